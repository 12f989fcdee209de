import ArgumentParser
import Foundation
import QDistComm

/// `qdist env`: checks the runtime before a long job — versions, OpenBLAS threads and kernels,
/// MPI ranks and their hosts, every collective qdist uses, and the allreduce bandwidth.
///
/// A thin shell over `CommunicatorFactory` and `EnvironmentReport.collect`. Only rank 0 prints;
/// the exit status is 1 when any collective check failed, on every rank.
struct EnvCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "env",
        abstract: "Report versions, BLAS threads, MPI ranks and hosts; self-check collectives; measure allreduce bandwidth.",
        discussion: """
            Run it alone to check the laptop set-up (one rank; the single-process communicator is \
            checked and no MPI function is called), or under your launcher to check the cluster \
            before a long job:

              mpirun -n 4 qdist env
              mpirun --hostfile hosts -n 16 qdist env --json
              srun --mpi=pmix qdist env

            Every rank runs every collective qdist uses (broadcast, reduce, allreduce SUM/MAX/MIN, \
            allgather, allgatherv, reduce-scatter, send/receive) on exact integer data, once as is \
            and once split into small chunks ("chunked." checks); results are agreed across ranks. \
            Then it times a SUM allreduce of --bandwidth-mib MiB (median of 5, GB = 10^9 bytes). \
            Only rank 0 prints. Exit status 1 when a check failed.

            It also says when OpenBLAS runs older kernels than the CPU supports (e.g. Haswell on \
            an AVX-512 CPU) and how many BLAS threads each rank uses (1 per rank unless \
            ranks x threads fits the cores; OPENBLAS_NUM_THREADS wins).
            """)

    @Flag(help: "Print one JSON object (keys: world_size, collectives_ok, allreduce_gbps, hosts, checks, ...).")
    var json = false

    @Option(name: .customLong("bandwidth-mib"),
            help: ArgumentHelp("Allreduce buffer size for the bandwidth test, in MiB; 0 skips it.", valueName: "MiB"))
    var bandwidthMiB = 64

    @Flag(help: "Skip the collective self-check (collectives_ok is then null).")
    var skipChecks = false

    @Option(name: .customLong("fail-on-rank"), help: ArgumentHelp(visibility: .hidden))
    var failOnRank: Int?

    func validate() throws {
        guard bandwidthMiB >= 0 else { throw ValidationError("--bandwidth-mib must be 0 (skip) or positive") }
        if let failOnRank, failOnRank < 0 { throw ValidationError("--fail-on-rank must be a rank (0 or more)") }
    }

    func run() throws {
        let comm = try CommunicatorFactory.makeWorldCommunicator()
        if let failOnRank, failOnRank == comm.rank {
            comm.abort(reason: "requested failure for testing")
        }
        let report: EnvironmentReport
        do {
            report = try EnvironmentReport.collect(on: comm, qdistVersion: QdistVersion.string,
                                                   bandwidthBytes: bandwidthMiB << 20, runChecks: !skipChecks)
        } catch {
            // A collective failed here; peers may be waiting in the next one, so stop them all.
            if comm.size > 1 { comm.abort(reason: "qdist env: \(error)") }
            throw error
        }
        if comm.isMain {
            print(json ? try Self.json(report) : Self.humanReadable(report))
        }
        try comm.finalize()
        if report.collectivesOK == false { throw ExitCode(1) }
    }

    static func json(_ report: EnvironmentReport) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(report), as: UTF8.self)
    }

    static func humanReadable(_ r: EnvironmentReport) -> String {
        var rows: [(String, String)] = [
            ("qdist", r.version),
            ("swift", r.swift),
            ("open mpi", r.openMPI + (r.mpiLibrary.map { " (library: \($0))" } ?? " (compiled against; MPI not started)")),
            ("communicator", r.communicator + (r.launcher.map { " (launcher: \($0))" } ?? "")
                + (r.mpiThreadLevel.map { ", thread level \($0)" } ?? "")),
            ("openblas", r.openBLAS),
            ("blas core", r.blasCore + (r.openBLASCoreType.map { " (OPENBLAS_CORETYPE=\($0))" } ?? "")),
            ("blas threads", "\(r.blasThreads) per rank" + (r.blasThreadsFromEnvironment ? " (from environment)" : " (chosen by qdist)")),
            ("cpu cores", "\(r.cpuCores) available" + (r.cpuHasAVX512 ? ", AVX-512" : "")),
            ("world size", "\(r.worldSize) (\(r.ranksOnNode) on this node)"),
        ]
        for (rank, host) in r.hosts.enumerated() { rows.append(("rank \(rank)", host)) }
        let collectives: String
        switch r.collectivesOK {
        case true?: collectives = "ok (\(r.checks.count) checks)"
        case false?: collectives = "FAILED (\(r.checks.filter { !$0.ok }.count) of \(r.checks.count) checks)"
        case nil: collectives = "skipped"
        }
        rows.append(("collectives", collectives))
        if let gbps = r.allreduceGBps, let bytes = r.allreduceBytes {
            let best = r.allreduceBestGBps.map { String(format: ", best %.3f", $0) } ?? ""
            rows.append(("allreduce", String(format: "%.3f GB/s", gbps) + best + " (\(bytes >> 20) MiB Float SUM, median of 5)"))
        } else {
            rows.append(("allreduce", "not measured"))
        }
        let width = rows.map(\.0.count).max() ?? 0
        var lines = rows.map { key, value in
            (key + ":").padding(toLength: width + 2, withPad: " ", startingAt: 0) + value
        }
        if !r.checks.isEmpty {
            lines.append("checks:")
            lines += r.checks.map { "  \($0.ok ? "✓" : "✗") \($0.name)" + ($0.ok ? "" : " — \($0.detail)") }
        }
        if !r.notes.isEmpty {
            lines.append("notes:")
            lines += r.notes.map { "  - \($0)" }
        }
        return lines.joined(separator: "\n")
    }
}
