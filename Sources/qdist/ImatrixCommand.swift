import ArgumentParser
import Foundation
import QDistComm
import QDistIO
import QDistPipeline

/// `qdist imatrix`: an importance matrix for GGUF quantization, in llama.cpp's format.
struct ImatrixCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "imatrix",
        abstract: "Compute a llama.cpp importance matrix (Σx² per input column of every layer) over calibration text.",
        discussion: """
            What llama-imatrix computes: the float model runs over calibration windows, and for \
            every blk.* weight the sum of squared inputs of each column and the token count are \
            kept. The file is llama-imatrix's GGUF format, so llama-quantize --imatrix reads it, \
            and qdist convert … OUT.gguf --imatrix uses it (llama-imatrix's files work there too). \
            Under mpirun the windows are split across ranks; the file is the same bytes for any \
            number of ranks and threads.

            Examples:
              qdist imatrix --model models/smollm2 --data ../shared/data/wikitext-2/valid.txt --samples 128 --output smollm2.imatrix.gguf
              mpirun -n 4 qdist imatrix --model models/smollm2 --data valid.txt --output imatrix.gguf
              qdist convert models/smollm2 smollm2-q4_k_m.gguf --gguf-type Q4_K_M --imatrix smollm2.imatrix.gguf
            """)

    @Option(name: .long, help: ArgumentHelp("Model folder or .gguf file.", valueName: "path"))
    var model: String

    @Option(name: .long, help: ArgumentHelp("Calibration text (UTF-8) or .jsonl.", valueName: "file"))
    var data: String

    @Option(name: .long, help: ArgumentHelp("The imatrix file to write (.gguf).", valueName: "file"))
    var output: String

    @Option(name: .long, help: "Calibration windows.")
    var samples = 128

    @Option(name: .long, help: "Tokens per window.")
    var seqLen = 512

    @Option(name: .long, help: "Seed of the window offsets.")
    var seed: UInt64 = 0

    @Option(name: .long, help: ArgumentHelp("How window offsets are drawn: splitmix64 or python_random.", valueName: "sampler"))
    var sampler = "splitmix64"

    @Flag(name: .long, help: "Replace the output if it is an importance matrix already.")
    var overwrite = false

    @Flag(name: .long, help: "Print one JSON object.")
    var json = false

    func validate() throws {
        if samples < 1 { throw ValidationError("--samples must be at least 1") }
        if seqLen < 2 { throw ValidationError("--seq-len must be at least 2") }
        if CalibrationSampler(rawValue: sampler) == nil { throw ValidationError("--sampler must be splitmix64 or python_random") }
    }

    func run() throws {
        try DistributedJob.run("imatrix") { comm in
            let url = URL(fileURLWithPath: output)
            try Self.checkOutput(url, overwrite: overwrite)
            let start = Date()
            let bundle = try ModelBundle.open(model)
            let llama = try bundle.loadModel()
            let calibration = try CalibrationSet.load(path: data, samples: samples, seqLen: seqLen, seed: seed,
                                                      sampler: CalibrationSampler(rawValue: sampler) ?? .splitmix64,
                                                      tokenizer: bundle.tokenizer, communicator: comm)
            let reporter = ProgressReporter(label: "imatrix", total: calibration.share(rank: comm.rank, size: comm.size).count,
                                            enabled: comm.isMain && !json)
            let matrix = try ImatrixCollection.collect(model: llama, config: bundle.config, calibration: calibration,
                                                       dataset: data, communicator: comm, progress: reporter)
            guard comm.isMain else { return }
            try matrix.write(to: url)
            let seconds = Date().timeIntervalSince(start)
            if json {
                try ConsoleOutput.printJSON(["output": output, "entries": matrix.entries.count, "windows": calibration.windows.count,
                                             "tokens": calibration.windows.count * seqLen, "world_size": comm.size, "seconds": seconds])
            } else {
                print(String(format: "wrote %@: %d weights, %d windows × %d tokens on %d rank%@ (%.1f s)", output, matrix.entries.count,
                             calibration.windows.count, seqLen, comm.size, comm.size == 1 ? "" : "s", seconds))
            }
        }
    }

    /// An existing file is replaced only with --overwrite and only when it is an imatrix.
    static func checkOutput(_ url: URL, overwrite: Bool) throws {
        guard FileManager.default.fileExists(atPath: url.path) else { return }
        guard overwrite else { throw QDistIOError(.invalidArgument, path: url.path, "exists; pass --overwrite to replace it") }
        guard (try? GGUFImatrix(contentsOf: url)) != nil else {
            throw QDistIOError(.invalidArgument, path: url.path, "exists and is not an importance matrix; qdist will not replace it")
        }
    }
}
