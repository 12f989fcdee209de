import Foundation
import QDistIO

/// The staging files of a whole-model run (`CalibrationFreeQuantizer`): each rank writes one
/// file per block it solved linears of, `block-B.rank-R.part-K.safetensors`, with its report
/// lines inside, before any block is recorded. A run that dies leaves such files; the rerun
/// adopts every readable one (the results do not depend on P, so it may have been written by
/// any rank of any world size) and solves only the rest, under a new part number so it never
/// writes over a file it adopted.
extension QuantizeProgressFolder {
    /// The metadata key of a staging file's report lines.
    static let reportKey = "__qdist_report__"

    static func fileName(block: Int, rank: Int, part: Int) -> String {
        String(format: "block-%05d.rank-%05d.part-%02d.safetensors", block, rank, part)
    }

    /// A staging file left by an earlier attempt: its block, linears and report lines.
    struct AdoptedFile {
        var block: Int
        var file: String
        var linears: [String]
        var reports: [QuantizationReport.Layer]
    }

    /// Unrecorded blocks' part files that read back whole (a torn or foreign file is ignored
    /// and its linears solved again), and the next free part number.
    func adoptableFiles() -> (files: [AdoptedFile], nextPart: Int) {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: blocks.path)) ?? []
        var files: [AdoptedFile] = [], nextPart = 0
        for name in names.sorted() where name.hasPrefix("block-") && name.hasSuffix(".safetensors") && name.contains(".part-") {
            guard let block = Int(name.dropFirst("block-".count).prefix(5)),
                  let part = name.range(of: ".part-").flatMap({ Int(name[$0.upperBound...].prefix(2)) }) else { continue }
            nextPart = max(nextPart, part + 1)
            guard block >= completedBlocks, let staged = try? readLinears(file: name),
                  let reports = try? reports(inFile: name), Set(reports.map(\.name)) == Set(staged.map(\.weights.name)) else { continue }
            files.append(AdoptedFile(block: block, file: name, linears: staged.map(\.weights.name).sorted(), reports: reports))
        }
        return (files, nextPart)
    }

    /// The report lines a part file carries.
    func reports(inFile file: String) throws -> [QuantizationReport.Layer] {
        let url = blocks.appendingPathComponent(file)
        let reader = try SafetensorsReader(url: url)
        guard let text = reader.metadata[Self.reportKey], let lines = try JSONParser.parse(text).arrayValue else {
            throw QDistIOError(.safetensors, path: url.path, "has no report lines")
        }
        return try lines.map { try QuantizationReport.Layer(json: $0, path: url.path) }
    }
}
