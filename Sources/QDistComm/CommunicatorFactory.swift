import Foundation
import QDistTensor

/// The program that started this process, as far as MPI is concerned, read from the
/// environment variables each launcher sets for its tasks.
///
/// Why detect instead of always calling MPI_Init: started alone, Open MPI would become a
/// "singleton" and try to reach an MPI runtime; qdist on a laptop must work with no MPI
/// daemon, no hostfile and no network, so without a launcher no MPI function is called.
public enum Launcher: String, Sendable, CaseIterable {
    /// Open MPI's mpirun/mpiexec (OMPI_COMM_WORLD_SIZE).
    case openMPI = "mpirun"
    /// A PMIx server: `srun --mpi=pmix`, prterun (PMIX_RANK).
    case pmix = "pmix"
    /// A PMI-1/PMI-2 launcher: MPICH's hydra, `srun --mpi=pmi2` (PMI_RANK and PMI_SIZE).
    case pmi = "pmi"

    /// The launcher named by `environment`, or nil for a process started by hand.
    public static func detect(in environment: [String: String] = ProcessInfo.processInfo.environment) -> Launcher? {
        if environment["OMPI_COMM_WORLD_SIZE"] != nil { return .openMPI }
        if environment["PMIX_RANK"] != nil { return .pmix }
        if environment["PMI_RANK"] != nil && environment["PMI_SIZE"] != nil { return .pmi }
        return nil
    }

    /// Tasks that `srun` started in this step (SLURM_STEP_NUM_TASKS, which the batch script
    /// itself does not have), or nil. Several tasks with no MPI launcher variables means srun
    /// ran without PMIx: every task would run the whole job alone.
    static func slurmTasksWithoutMPI(in environment: [String: String]) -> Int? {
        guard detect(in: environment) == nil, environment["SLURM_PROCID"] != nil,
              let tasks = environment["SLURM_STEP_NUM_TASKS"].flatMap({ Int($0) }) else { return nil }
        return tasks > 1 ? tasks : nil
    }
}

/// Makes the communicator a qdist process should use, and sizes OpenBLAS's thread pool for it.
///
/// Under a launcher (``Launcher/detect(in:)``) it returns an ``MPICommunicator`` over
/// MPI_COMM_WORLD; otherwise a ``SingleProcessCommunicator`` without calling any MPI function.
/// Then it applies `BLASThreads.configure(ranksOnNode:)`: one BLAS thread per rank unless
/// ranks × threads fits the cores, and OPENBLAS_NUM_THREADS / OMP_NUM_THREADS always win.
public enum CommunicatorFactory {
    /// The world communicator for this process. Throws ``CommunicatorError`` when MPI fails to
    /// start, or when Slurm started several tasks without PMIx (they could not find each other).
    public static func makeWorldCommunicator(
        environment: [String: String] = ProcessInfo.processInfo.environment,
        maxChunkElements: Int = MPICommunicator.defaultMaxChunkElements,
        configureBLASThreads: Bool = true
    ) throws -> any Communicator {
        let communicator: any Communicator
        if Launcher.detect(in: environment) != nil {
            communicator = try MPICommunicator(maxChunkElements: maxChunkElements, environment: environment)
        } else if let tasks = Launcher.slurmTasksWithoutMPI(in: environment) {
            throw CommunicatorError(.launcher, call: "makeWorldCommunicator",
                                    message: "srun started \(tasks) tasks without PMIx, so they cannot form one MPI job; use `srun --mpi=pmix` or mpirun")
        } else {
            communicator = SingleProcessCommunicator(maxChunkElements: maxChunkElements)
        }
        if configureBLASThreads {
            BLASThreads.configure(ranksOnNode: communicator.ranksOnNode)
        }
        return communicator
    }
}
