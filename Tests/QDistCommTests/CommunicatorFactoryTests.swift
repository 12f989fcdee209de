import QDistComm
import XCTest

/// Launcher detection decides whether MPI is touched at all; these run with synthetic
/// environments, so none of them starts MPI.
final class CommunicatorFactoryTests: XCTestCase {
    func testNoLauncherVariablesMeansNoLauncher() {
        XCTAssertNil(Launcher.detect(in: [:]))
        XCTAssertNil(Launcher.detect(in: ["HOME": "/root", "PMI_RANK": "0"]))  // PMI needs PMI_SIZE too
    }

    func testEachLauncherIsRecognisedByItsVariables() {
        XCTAssertEqual(Launcher.detect(in: ["OMPI_COMM_WORLD_SIZE": "4"]), .openMPI)
        XCTAssertEqual(Launcher.detect(in: ["PMIX_RANK": "1", "SLURM_PROCID": "1"]), .pmix)
        XCTAssertEqual(Launcher.detect(in: ["PMI_RANK": "0", "PMI_SIZE": "2"]), .pmi)
    }

    func testFactoryWithoutLauncherReturnsSingleProcessCommunicator() throws {
        let comm = try CommunicatorFactory.makeWorldCommunicator(environment: ["HOME": "/root"],
                                                                 configureBLASThreads: false)
        XCTAssertTrue(comm is SingleProcessCommunicator)
        XCTAssertEqual(comm.size, 1)
        XCTAssertTrue(comm.isMain)
    }

    func testFactoryInsideSlurmBatchScriptWithoutSrunIsSingleProcess() throws {
        // The batch script has SLURM_PROCID=0 and SLURM_NTASKS, but no step task count.
        let env = ["SLURM_PROCID": "0", "SLURM_NTASKS": "8", "SLURM_JOB_ID": "12"]
        let comm = try CommunicatorFactory.makeWorldCommunicator(environment: env, configureBLASThreads: false)
        XCTAssertTrue(comm is SingleProcessCommunicator)
    }

    func testFactoryRefusesSrunTasksStartedWithoutPMIx() {
        let env = ["SLURM_PROCID": "2", "SLURM_STEP_NUM_TASKS": "4", "SLURM_STEP_ID": "0"]
        XCTAssertThrowsError(try CommunicatorFactory.makeWorldCommunicator(environment: env, configureBLASThreads: false)) { error in
            XCTAssertEqual((error as? CommunicatorError)?.kind, .launcher)
            XCTAssertTrue("\(error)".contains("--mpi=pmix"), "\(error)")
        }
    }

    func testBLASCoreAdviceOnlyWhenAVX512CPUGetsOlderKernels() {
        let note = CPUFeatures.blasCoreAdvice(core: "Haswell", hasAVX512F: true, coreTypeSetting: "Haswell")
        XCTAssertNotNil(note)
        XCTAssertTrue(note?.contains("OpenBLAS uses Haswell kernels although the CPU has AVX-512; OPENBLAS_CORETYPE=SkylakeX may be faster") ?? false)
        XCTAssertTrue(note?.contains("OPENBLAS_CORETYPE=Haswell") ?? false)
        XCTAssertNil(CPUFeatures.blasCoreAdvice(core: "Haswell", hasAVX512F: false, coreTypeSetting: nil))
        XCTAssertNil(CPUFeatures.blasCoreAdvice(core: "SkylakeX", hasAVX512F: true, coreTypeSetting: nil))
        XCTAssertNil(CPUFeatures.blasCoreAdvice(core: "Cooperlake", hasAVX512F: true, coreTypeSetting: nil))
    }

    func testSwiftCompilerVersionIsAtLeastSixPointThree() {
        XCTAssertTrue(["6.3", "6.4", "6.5", ">=7.0"].contains(SwiftCompiler.version), SwiftCompiler.version)
    }

    func testCompiledOpenMPIVersionIsDotted() {
        XCTAssertTrue(OpenMPIVersion.compiled.hasPrefix("4."), OpenMPIVersion.compiled)
        XCTAssertEqual(OpenMPIVersion.compiled.split(separator: ".").count, 3)
    }
}
