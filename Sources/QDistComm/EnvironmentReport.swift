import Foundation
import QDistTensor

/// What `qdist env` reports: versions, the BLAS and MPI set-up, the rank→host map, the
/// collective self-check and the allreduce bandwidth — everything needed to tell "my cluster is
/// misconfigured" from "qdist is wrong" before a long job.
///
/// Collected collectively (every rank calls ``collect(on:qdistVersion:bandwidthBytes:runChecks:)``);
/// only rank 0 should print it. JSON keys are snake_case and stable for scripts;
/// `allreduce_gbps` is null when not measured (one rank, or skipped), and `collectives_ok` is
/// null when the checks were skipped.
public struct EnvironmentReport: Codable, Sendable {
    public struct Check: Codable, Sendable, Equatable {
        public var name: String
        public var ok: Bool
        public var detail: String
    }

    public var version: String
    public var swift: String
    public var openMPI: String
    public var mpiLibrary: String?
    public var mpiThreadLevel: String?
    public var communicator: String
    public var launcher: String?
    public var openBLAS: String
    public var blasCore: String
    public var blasThreads: Int
    public var blasThreadsFromEnvironment: Bool
    public var openBLASCoreType: String?
    public var cpuCores: Int
    public var cpuHasAVX512: Bool
    public var worldSize: Int
    public var ranksOnNode: Int
    public var hosts: [String]
    public var checks: [Check]
    public var collectivesOK: Bool?
    public var allreduceGBps: Double?
    public var allreduceBestGBps: Double?
    public var allreduceBytes: Int?
    public var allreduceMethod: String?
    public var notes: [String]

    enum CodingKeys: String, CodingKey {
        case version, swift, communicator, launcher, hosts, checks, notes
        case openMPI = "open_mpi", mpiLibrary = "mpi_library", mpiThreadLevel = "mpi_thread_level"
        case openBLAS = "openblas", blasCore = "blas_core", blasThreads = "blas_threads"
        case blasThreadsFromEnvironment = "blas_threads_from_env", openBLASCoreType = "openblas_coretype"
        case cpuCores = "cpu_cores", cpuHasAVX512 = "cpu_avx512f", worldSize = "world_size"
        case ranksOnNode = "ranks_on_node", collectivesOK = "collectives_ok"
        case allreduceGBps = "allreduce_gbps", allreduceBestGBps = "allreduce_best_gbps"
        case allreduceBytes = "allreduce_bytes", allreduceMethod = "allreduce_method"
    }

    /// Encodes every key, writing JSON null for absent optionals (scripts can rely on the keys).
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(version, forKey: .version); try c.encode(swift, forKey: .swift)
        try c.encode(openMPI, forKey: .openMPI); try c.encode(mpiLibrary, forKey: .mpiLibrary)
        try c.encode(mpiThreadLevel, forKey: .mpiThreadLevel); try c.encode(communicator, forKey: .communicator)
        try c.encode(launcher, forKey: .launcher); try c.encode(openBLAS, forKey: .openBLAS)
        try c.encode(blasCore, forKey: .blasCore); try c.encode(blasThreads, forKey: .blasThreads)
        try c.encode(blasThreadsFromEnvironment, forKey: .blasThreadsFromEnvironment)
        try c.encode(openBLASCoreType, forKey: .openBLASCoreType); try c.encode(cpuCores, forKey: .cpuCores)
        try c.encode(cpuHasAVX512, forKey: .cpuHasAVX512); try c.encode(worldSize, forKey: .worldSize)
        try c.encode(ranksOnNode, forKey: .ranksOnNode); try c.encode(hosts, forKey: .hosts)
        try c.encode(checks, forKey: .checks); try c.encode(collectivesOK, forKey: .collectivesOK)
        try c.encode(allreduceGBps, forKey: .allreduceGBps); try c.encode(allreduceBestGBps, forKey: .allreduceBestGBps)
        try c.encode(allreduceBytes, forKey: .allreduceBytes); try c.encode(allreduceMethod, forKey: .allreduceMethod)
        try c.encode(notes, forKey: .notes)
    }

    /// Gathers the report. Collective: every rank calls it with the same arguments.
    /// - Parameters:
    ///   - bandwidthBytes: buffer for ``AllreduceBandwidth``; 0 skips it (so does a one-rank job).
    ///   - runChecks: false skips ``CollectiveSelfCheck`` (`collectives_ok` is then null).
    public static func collect(on comm: any Communicator, qdistVersion: String, bandwidthBytes: Int,
                               runChecks: Bool,
                               environment: [String: String] = ProcessInfo.processInfo.environment) throws -> EnvironmentReport {
        let mpi = comm as? MPICommunicator
        let blasChoice = BLASThreads.recommended(ranksOnNode: comm.ranksOnNode, environment: environment)
        let core = BLASThreads.coreName
        let avx512 = CPUFeatures.hasAVX512F
        var report = EnvironmentReport(
            version: qdistVersion, swift: SwiftCompiler.version, openMPI: OpenMPIVersion.compiled,
            mpiLibrary: mpi?.libraryVersion, mpiThreadLevel: mpi?.threadLevel.rawValue,
            communicator: comm.implementationName, launcher: Launcher.detect(in: environment)?.rawValue,
            openBLAS: BLASThreads.config, blasCore: core, blasThreads: BLASThreads.current,
            blasThreadsFromEnvironment: blasChoice.fromEnvironment,
            openBLASCoreType: environment["OPENBLAS_CORETYPE"], cpuCores: BLASThreads.availableCores,
            cpuHasAVX512: avx512, worldSize: comm.size, ranksOnNode: comm.ranksOnNode,
            hosts: try comm.gatherHostNames(), checks: [], collectivesOK: nil, allreduceGBps: nil,
            allreduceBestGBps: nil, allreduceBytes: nil, allreduceMethod: nil, notes: [])
        if let advice = CPUFeatures.blasCoreAdvice(core: core, hasAVX512F: avx512,
                                                   coreTypeSetting: environment["OPENBLAS_CORETYPE"]) {
            report.notes.append(advice)
        }
        if runChecks {
            let result = try CollectiveSelfCheck.run(on: comm)
            report.checks = result.checks.map { Check(name: $0.name, ok: $0.passed, detail: $0.detail) }
            report.collectivesOK = result.passed
            if mpi == nil {
                report.notes.append("single-process mode: the self-check exercised the single-process communicator, not MPI; run under mpirun to check MPI")
            }
        } else {
            report.notes.append("collective self-check skipped (--skip-checks)")
        }
        if comm.size > 1 && bandwidthBytes > 0 {
            let m = try AllreduceBandwidth.measure(comm, bytes: bandwidthBytes)
            report.allreduceGBps = rounded(m.gigabytesPerSecond)
            report.allreduceBestGBps = rounded(m.bestGigabytesPerSecond)
            report.allreduceBytes = m.bytes
            report.allreduceMethod = "Float SUM allreduce, median of \(m.iterations) after 1 warm-up, slowest rank, bytes/s/1e9"
        } else if comm.size == 1 {
            report.notes.append("allreduce bandwidth not measured: one rank has no peer")
        }
        return report
    }

    private static func rounded(_ value: Double) -> Double { (value * 1000).rounded() / 1000 }
}

/// The Swift compiler that built qdist, from `#if compiler(>=…)` (no runtime query exists).
public enum SwiftCompiler {
    public static var version: String {
        #if compiler(>=7.0)
        return ">=7.0"
        #elseif compiler(>=6.5)
        return "6.5"
        #elseif compiler(>=6.4)
        return "6.4"
        #elseif compiler(>=6.3)
        return "6.3"
        #elseif compiler(>=6.2)
        return "6.2"
        #elseif compiler(>=6.1)
        return "6.1"
        #else
        return "6.0"
        #endif
    }
}

/// CPU features that decide which OpenBLAS kernels would be fastest.
public enum CPUFeatures {
    /// True when /proc/cpuinfo lists `avx512f` (false where it cannot be read).
    public static var hasAVX512F: Bool {
        guard let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return false }
        return info.split(separator: "\n").contains { line in
            line.hasPrefix("flags") && line.split(separator: " ").contains("avx512f")
        }
    }

    /// A note when OpenBLAS runs AVX2-or-older kernels on an AVX-512 CPU (about half the
    /// sgemm speed on this project's machines), or nil when the choice fits the CPU.
    public static func blasCoreAdvice(core: String, hasAVX512F: Bool, coreTypeSetting: String?) -> String? {
        let avx512Cores: Set<String> = ["skylakex", "cooperlake", "sapphirerapids"]
        guard hasAVX512F, !avx512Cores.contains(core.lowercased()) else { return nil }
        var note = "OpenBLAS uses \(core) kernels although the CPU has AVX-512; OPENBLAS_CORETYPE=SkylakeX may be faster"
        if let setting = coreTypeSetting { note += " (the environment sets OPENBLAS_CORETYPE=\(setting))" }
        return note
    }
}
