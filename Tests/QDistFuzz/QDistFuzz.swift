// `QDistFuzz READER SEED_PATH COUNT RNG_SEED PROGRESS_FILE`: feeds COUNT seeded, structure-aware
// mutations of a valid input to one of qdist's readers. Every input must end in a thrown error
// or a valid result; a trap kills this process, and the harness (FuzzReadersTests, or
// Benchmarks/fuzz.sh for long campaigns) reads PROGRESS_FILE to name the input that did it —
// reproducible from (READER, RNG_SEED, index). Prints one JSON line: inputs, errors, valid.
import Foundation
import QDistIO
import QDistPipeline
import QDistTensor

@main
struct QDistFuzz {
    static func main() throws {
        let a = CommandLine.arguments
        guard a.count == 6, let count = Int(a[3]), let seed = UInt64(a[4]) else {
            FileHandle.standardError.write(Data("usage: qdist-fuzz safetensors|gguf|tokenizer|recipe|finetune|peft|quantized SEED_PATH COUNT RNG_SEED PROGRESS_FILE\n".utf8))
            exit(2)
        }
        let reader = a[1], seedPath = URL(fileURLWithPath: a[2]), progress = a[5]
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("qdist-fuzz-\(getpid())")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: work) }
        // Folder readers: one of the folder's files is mutated per input.
        let folderFiles = ["peft": ["adapter_config.json", "adapter_model.safetensors"],
                           "quantized": ["config.json", "model.safetensors", "tokenizer.json"]]
        let files: [String] = folderFiles[reader] ?? [seedPath.lastPathComponent]
        let base = folderFiles[reader] != nil ? seedPath : seedPath.deletingLastPathComponent()
        let originals = try files.map { try [UInt8](Data(contentsOf: base.appendingPathComponent($0))) }
        let baseConfig = reader == "peft" ? try ModelConfiguration.load(from: seedPath.appendingPathComponent("base")) : nil
        var rng = SeededGenerator(state: seed)
        var errors = 0, valid = 0
        for i in 0..<count {
            if i % 16 == 0 { try? Data("\(i)".utf8).write(to: URL(fileURLWithPath: progress)) }
            let which = Int(rng.next() % UInt64(files.count))
            for (k, name) in files.enumerated() {
                let bytes = k == which ? Mutator.mutate(originals[k], text: name.hasSuffix(".json") || name.hasSuffix(".yaml"), rng: &rng) : originals[k]
                try Data(bytes).write(to: work.appendingPathComponent(name))
            }
            do {
                try read(reader, work.appendingPathComponent(files[0]), folder: work, baseConfig: baseConfig)
                valid += 1
            } catch {
                errors += 1
            }
        }
        try? Data("\(count)".utf8).write(to: URL(fileURLWithPath: progress))
        // Peak memory over all inputs: a header that claims 2^60 elements must be refused
        // before allocating, so this stays near the driver's own size.
        let peak = ProcessMemory.peakResidentBytes ?? 0
        print("{\"reader\": \"\(reader)\", \"inputs\": \(count), \"errors\": \(errors), \"valid\": \(valid), \"peak_rss_bytes\": \(peak)}")
    }

    /// Opens the input as qdist would and touches everything it declares.
    static func read(_ reader: String, _ url: URL, folder: URL, baseConfig: ModelConfiguration?) throws {
        switch reader {
        case "safetensors":
            let r = try SafetensorsReader(url: url)
            for n in r.tensorNames { _ = try r.tensor(n) }
        case "gguf":
            let g = try GGUFCheckpoint(url: url)
            for n in g.tensorNames { _ = try g.tensor(n) }
        case "tokenizer":
            let t = try BPETokenizer(tokenizerJSON: url)
            let ids = t.encode("Hello, world! 123 <|endoftext|> naïve café")
            _ = t.decode(ids)
        case "recipe":
            _ = try QuantizeJobConfig.load(url)
        case "finetune":
            _ = try FinetuneJobConfig.load(url)
        case "peft":
            _ = try PEFTAdapterReader.read(folder, baseConfig: baseConfig!)
        case "quantized":
            // A quantized checkpoint folder (compressed-tensors or GPTQ) as eval opens it.
            let bundle = try ModelBundle.open(folder.path)
            _ = try bundle.loadModel()
        default:
            FileHandle.standardError.write(Data("unknown reader \(reader)\n".utf8))
            exit(2)
        }
    }
}

/// Structure-aware mutations: binary inputs get bit flips, interesting integers written over
/// length/count/offset-sized fields (little-endian u32/u64), truncation and chunk copies; text
/// inputs also get structural characters inserted, deleted or replaced.
enum Mutator {
    static let integers: [UInt64] = [0, 1, 2, 0x7F, 0x80, 0xFF, 0xFFFF, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF,
                                     1 << 32, 1 << 40, 1 << 60, UInt64(Int64.max), UInt64.max]
    static let structural = Array("{}[]:,\"' \n-0123456789.eE\\#&*!|>".utf8)

    static func mutate(_ input: [UInt8], text: Bool, rng: inout SeededGenerator) -> [UInt8] {
        var b = input
        let steps = 1 + Int(rng.next() % 4)
        for _ in 0..<steps {
            guard !b.isEmpty else { b = [UInt8(truncatingIfNeeded: rng.next())]; continue }
            let at = Int(rng.next() % UInt64(b.count))
            switch rng.next() % (text ? 7 : 5) {
            case 0: b[at] ^= UInt8(1) << (rng.next() % 8)
            case 1:
                // An interesting integer over a 4- or 8-byte field, often near the header.
                let v = integers[Int(rng.next() % UInt64(integers.count))]
                let width = rng.next() % 2 == 0 ? 4 : 8
                let pos = rng.next() % 2 == 0 ? Int(rng.next() % UInt64(min(b.count, 64))) : at
                for k in 0..<width where pos + k < b.count { b[pos + k] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(k))) }
            case 2: b = Array(b.prefix(Int(rng.next() % UInt64(b.count + 1))))
            case 3:
                let len = min(b.count - at, 1 + Int(rng.next() % 64))
                let chunk = Array(b[at..<at + len])
                b.insert(contentsOf: chunk, at: Int(rng.next() % UInt64(b.count + 1)))
            case 4: b[at] = UInt8(truncatingIfNeeded: rng.next())
            case 5: b.insert(structural[Int(rng.next() % UInt64(structural.count))], at: at)
            default: b.remove(at: at)
            }
        }
        return b
    }
}
