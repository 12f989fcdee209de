import Foundation
import QDistComm
import QDistIO

/// A budget's plan as the staging folder keeps it (`budget_plan.json`), so that a resumed job
/// takes the allocation it started with instead of repeating the sensitivity pass: the report's
/// `budget` object plus `resume_key`, which names the job before the allocation (its fingerprint
/// with the recipe's own schemes) and the budget. A rerun whose key differs, or whose file does
/// not parse, measures again (and the quantization pass's fingerprint then decides whether the
/// recorded blocks still apply).
enum StagedBudgetPlan {
    static let fileName = "budget_plan.json"

    /// What the staged plan was computed for: the job before its budget is applied, and the
    /// budget's resolved settings.
    static func resumeKey(_ job: SequentialQuantizer.Job, budget: QuantizationBudget) -> JSONValue {
        .object([
            (key: "job", value: job.fingerprint),
            (key: "bits_per_weight", value: .number(budget.bitsPerWeight)),
            (key: "candidates", value: .array(budget.candidates.map { .string($0.label) })),
            (key: "metric", value: .string(budget.metric.rawValue)),
            (key: "samples", value: .integer(budget.samples)),
            (key: "fisher_samples", value: .integer(budget.fisherSamples)),
        ])
    }

    /// The file's contents for `plan` computed under `key`.
    static func contents(_ plan: BudgetPlan, key: JSONValue) -> JSONValue {
        guard case .object(let fields) = plan.jsonValue else { return plan.jsonValue }
        return .object(fields + [(key: "resume_key", value: key)])
    }

    /// The staged plan of a resumed job, the same on every rank (rank 0 reads and validates the
    /// file and sends its bytes), or nil where there is none to reuse.
    static func restore(_ job: SequentialQuantizer.Job, budget: QuantizationBudget, communicator comm: any Communicator) throws -> BudgetPlan? {
        guard job.resume else { return nil }
        let key = resumeKey(job, budget: budget)
        var bytes: [UInt8] = []
        var restored: BudgetPlan? = nil
        var refusal: String? = nil
        if comm.isMain {
            let staging = QuantizeProgressFolder.stagingURL(for: job.output)
            if let data = try? Data(contentsOf: staging.appendingPathComponent(fileName)) {
                restored = try? plan(from: Array(data), key: key, job: job, budget: budget)
                if restored != nil {
                    bytes = Array(data)
                } else if QuantizeProgressFolder.recordIsIntact(staging.appendingPathComponent("blocks"), 0) {
                    // Its blocks were quantized under another plan: say so now, not after a
                    // sensitivity pass whose plan the recorded job would then refuse.
                    refusal = "\(staging.path): holds finished blocks of a job with another budget or recipe; rerun with its settings to resume, or pass --no-resume to discard them"
                }
            }
        }
        var count = [refusal == nil ? bytes.count : -1]
        try comm.broadcast(&count, root: 0)
        if count[0] < 0 { throw QuantizePlanError(description: refusal ?? "rank 0 refused the staged budget plan") }
        guard count[0] > 0 else { return nil }
        if !comm.isMain { bytes = [UInt8](repeating: 0, count: count[0]) }
        try comm.broadcast(&bytes, root: 0)
        return try restored ?? plan(from: bytes, key: key, job: job, budget: budget)
    }

    /// The plan in `bytes` if it was made under `key`: its measured errors re-allocated (the
    /// knapsack is deterministic, so this is the staged choice), and refused if the choice differs.
    static func plan(from bytes: [UInt8], key: JSONValue, job: SequentialQuantizer.Job, budget: QuantizationBudget) throws -> BudgetPlan {
        let json = try JSONParser.parse(String(decoding: bytes, as: UTF8.self))
        guard json["resume_key"] == key else { throw QuantizePlanError(description: "budget: the staged plan is for another job") }
        guard let linears = json["linears"]?.arrayValue, linears.count == job.plan.entries.count else {
            throw QuantizePlanError(description: "budget: the staged plan does not list this job's linears")
        }
        var errors: [[Double?]] = []
        for (entry, linear) in zip(job.plan.entries, linears) {
            guard linear["name"]?.stringValue == entry.name, let row = linear["errors"]?.arrayValue, row.count == budget.candidates.count else {
                throw QuantizePlanError(description: "budget: the staged plan's \(entry.name) does not match")
            }
            errors.append(row.map(\.doubleValue))
        }
        var plan = try budget.allocate(job.plan.entries, errors: errors)
        let staged = linears.map { $0["scheme"]?.stringValue }
        guard staged == plan.choices.map({ Optional(budget.candidates[$0].label) }) else {
            throw QuantizePlanError(description: "budget: the staged plan's choices are not its errors' allocation")
        }
        plan.seconds = json["seconds"]?.doubleValue ?? 0
        if case .object(let steps)? = json["seconds_by_step"] {
            plan.secondsByStep = Dictionary(uniqueKeysWithValues: steps.compactMap { s in s.value.doubleValue.map { (s.key, $0) } })
        }
        return plan
    }
}
