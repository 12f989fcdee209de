// adapter_config.json as huggingface/peft writes it: src/peft/config.py (PeftConfigMixin
// .save_pretrained: json.dumps(asdict(config), indent=2, sort_keys=True)) and
// src/peft/tuners/lora/config.py (LoraConfig fields), checked against peft 0.21.2.
import Foundation
import QDistIO
import QDistModel

/// The `adapter_config.json` of a PEFT LoRA adapter: written with the exact key set PEFT 0.21
/// writes for a `LoraConfig`, and read strictly.
///
/// Reading accepts what a Llama LoRA adapter trained by PEFT (or qdist) holds and refuses,
/// with one line naming the file and key, every setting that would change what the adapter
/// computes but that qdist does not implement (DoRA, bias training, per-module rank patterns,
/// layer subsets, PiSSA/OLoRA/LoftQ initializations that rewrite the base weights, …):
/// applying such an adapter as a plain LoRA would give a different model without saying so.
/// Keys PEFT may add in later versions are accepted only while they hold an "off" value
/// (null, false, empty).
public enum PEFTAdapterConfigFile {
    /// The file name PEFT uses (`CONFIG_NAME`).
    public static let fileName = "adapter_config.json"
    /// The PEFT release whose key set `json(for:baseModel:)` writes (`peft_version`).
    public static let peftFormatVersion = "0.21.2"

    /// What the file says, once validated against a model of `layers` decoder layers.
    public struct Contents: Sendable, Equatable {
        public var lora: LoRAConfig
        /// `base_model_name_or_path`, when the file names one.
        public var baseModel: String?
    }

    /// The file's text for `lora` on `baseModel`: every key PEFT 0.21.2 writes for a
    /// `LoraConfig` of a CAUSAL_LM PeftModel (inference_mode true, as `save_pretrained` sets
    /// it), keys sorted, two-space indent, no trailing newline — byte for byte what PEFT writes
    /// for the same settings (target_modules order aside: PEFT writes a set, in hash order).
    public static func text(for lora: LoRAConfig, baseModel: String) -> [UInt8] {
        let alpha: JSONValue = .number(lora.alpha)
        let pairs: [(key: String, value: JSONValue)] = [
            ("alora_invocation_tokens", nil), ("alpha_pattern", .object([])), ("arrow_config", nil),
            ("auto_mapping", nil), ("base_model_name_or_path", .string(baseModel)), ("bias", "none"),
            ("corda_config", nil), ("ensure_weight_tying", false), ("eva_config", nil), ("exclude_modules", nil),
            ("fan_in_fan_out", false), ("inference_mode", true), ("init_lora_weights", true), ("kasa_config", nil),
            ("layer_replication", nil), ("layers_pattern", nil), ("layers_to_transform", nil), ("loftq_config", .object([])),
            ("lora_alpha", alpha), ("lora_bias", false), ("lora_dropout", .string(pythonFloatMarker)),
            ("lora_ga_config", nil), ("megatron_config", nil), ("megatron_core", "megatron.core"),
            ("modules_to_save", nil), ("monteclora_config", nil), ("peft_type", "LORA"),
            ("peft_version", .string(peftFormatVersion)), ("qalora_group_size", 16), ("r", .integer(lora.rank)),
            ("rank_pattern", .object([])), ("revision", nil),
            ("target_modules", .array(lora.targetModules.map { .string($0) })), ("target_parameters", nil),
            ("task_type", "CAUSAL_LM"), ("trainable_token_indices", nil), ("use_bdlora", nil), ("use_dora", false),
            ("use_qalora", false), ("use_rslora", .bool(lora.useRSLoRA)), ("velora_config", nil),
        ].map { (key: $0.0, value: $0.1) }
        let text = String(decoding: JSONValue.object(pairs).serialized(.pretty(sortKeys: true)), as: UTF8.self)
        // lora_dropout is a Python float: json.dumps writes 0.0, where a JSON number 0 would be "0".
        let dropout = lora.dropout == lora.dropout.rounded() ? String(format: "%.1f", lora.dropout) : "\(lora.dropout)"
        return Array(text.replacingOccurrences(of: "\"\(pythonFloatMarker)\"", with: dropout).utf8)
    }

    private static let pythonFloatMarker = "@@qdist-python-float@@"

    /// Parses and validates the file at `url` for a base model with `layers` decoder layers.
    public static func read(_ url: URL, layers: Int) throws -> Contents {
        try parse(JSONParser.parseFile(at: url), path: url.path, layers: layers)
    }

    /// Validates parsed contents; `path` is named in every error.
    public static func parse(_ json: JSONValue, path: String, layers: Int) throws -> Contents {
        let f = try JSONFields(json, path: path)
        func refuse(_ key: String, _ why: String) -> QDistIOError { f.error(key, why) }

        guard let peftType = try f.optionalString("peft_type") else { throw QDistIOError(.config, path: path, "missing required key \"peft_type\"") }
        guard peftType == "LORA" else { throw refuse("peft_type", "\"\(peftType)\" is not a LoRA adapter (qdist reads peft_type LORA)") }
        if let task = try f.optionalString("task_type"), task != "CAUSAL_LM" {
            throw refuse("task_type", "\"\(task)\": qdist applies adapters to causal language models (CAUSAL_LM)")
        }
        let baseModel = try f.optionalString("base_model_name_or_path")
        _ = try f.optionalString("revision")
        for key in ["r", "lora_alpha", "target_modules"] where f.value(key) == nil {
            throw QDistIOError(.config, path: path, "missing required key \"\(key)\"")
        }
        let rank = try f.int("r")
        guard rank > 0 else { throw refuse("r", "must be a positive integer, got \(rank)") }
        let alpha = try f.double("lora_alpha")
        let dropout = try f.optionalDouble("lora_dropout") ?? 0
        guard dropout >= 0 && dropout < 1 else { throw refuse("lora_dropout", "must be in [0, 1), got \(dropout)") }
        if let bias = try f.optionalString("bias"), bias != "none" {
            throw refuse("bias", "\"\(bias)\": qdist neither trains nor applies biases with an adapter (bias must be \"none\")")
        }
        let useRSLoRA = try f.optionalBool("use_rslora") ?? false
        for (key, why) in [("fan_in_fan_out", "is for GPT-2 style Conv1D weights; Llama linears store (out, in)"),
                           ("use_dora", "DoRA (weight-decomposed LoRA) is not supported"),
                           ("lora_bias", "LoRA biases on lora_B are not supported"),
                           ("use_qalora", "QA-LoRA is not supported")] {
            if try f.optionalBool(key) == true { throw refuse(key, "true: \(why)") }
        }
        for key in ["modules_to_save", "rank_pattern", "alpha_pattern", "layer_replication", "trainable_token_indices",
                    "target_parameters", "alora_invocation_tokens", "arrow_config", "kasa_config", "lora_ga_config",
                    "monteclora_config", "velora_config", "use_bdlora", "megatron_config"] {
            if let v = f.value(key), !isOff(v) {
                throw refuse(key, "\(v.compactText.prefix(60)): not supported by qdist (it must be null or empty)")
            }
        }
        if let initial = f.value("init_lora_weights"), let name = initial.stringValue {
            let lowered = name.lowercased()
            if ["pissa", "olora", "loftq", "corda"].contains(where: { lowered.hasPrefix($0) }) {
                throw refuse("init_lora_weights", "\"\(name)\" rewrites the base weights at init; qdist applies adapters to the unmodified base")
            }
        } else if let initial = f.value("init_lora_weights"), initial.boolValue == nil {
            throw refuse("init_lora_weights", "expected a boolean or a string, found \(initial.typeName)")
        }
        let layersToTransform = try layerList(f, layers: layers)
        if let pattern = f.value("layers_pattern"), !isOff(pattern), pattern != "layers", pattern != ["layers"] {
            throw refuse("layers_pattern", "\(pattern.compactText): a Llama model's layers are under \"layers\"")
        }
        for key in ["inference_mode", "ensure_weight_tying"] { _ = try f.optionalBool(key) }
        for (key, value) in json.objectValue ?? [] where !knownKeys.contains(key) && !isOff(value) {
            throw refuse(key, "\(value.compactText.prefix(60)): a setting qdist does not know; refusing it rather than ignoring it")
        }

        do {
            let targets = try PEFTTargetModules.resolve(try selector(f, "target_modules")!, exclude: try selector(f, "exclude_modules"),
                                                        layersToTransform: layersToTransform, layers: layers)
            return Contents(lora: LoRAConfig(rank: rank, alpha: alpha, dropout: dropout, targets: targets, useRSLoRA: useRSLoRA),
                            baseModel: baseModel)
        } catch let e as LoRAConfigError {
            throw QDistIOError(.config, path: path, e.description)
        }
    }

    /// Every key PEFT 0.21 writes for LoRA, plus `runtime_config` (not saved, but harmless).
    static let knownKeys: Set<String> = [
        "alora_invocation_tokens", "alpha_pattern", "arrow_config", "auto_mapping", "base_model_name_or_path", "bias",
        "corda_config", "ensure_weight_tying", "eva_config", "exclude_modules", "fan_in_fan_out", "inference_mode",
        "init_lora_weights", "kasa_config", "layer_replication", "layers_pattern", "layers_to_transform", "loftq_config",
        "lora_alpha", "lora_bias", "lora_dropout", "lora_ga_config", "megatron_config", "megatron_core", "modules_to_save",
        "monteclora_config", "peft_type", "peft_version", "qalora_group_size", "r", "rank_pattern", "revision",
        "runtime_config", "target_modules", "target_parameters", "task_type", "trainable_token_indices", "use_bdlora",
        "use_dora", "use_qalora", "use_rslora", "velora_config",
    ]

    /// null, false, an empty list or an empty object: a feature switched off.
    static func isOff(_ v: JSONValue) -> Bool {
        v.isNull || v.boolValue == false || v.arrayValue?.isEmpty == true || v.objectValue?.isEmpty == true
    }

    private static func selector(_ f: JSONFields, _ key: String) throws -> PEFTTargetModules.Selector? {
        guard let v = f.value(key) else { return nil }
        if let s = v.stringValue { return .pattern(s) }
        if v.arrayValue?.isEmpty == true, key == "exclude_modules" { return nil }
        guard let list = try f.optionalStringArray(key), !list.isEmpty else {
            throw f.error(key, "expected a non-empty list of module names or a regular expression string")
        }
        return .names(list)
    }

    /// `layers_to_transform` (an index or a list of them), or nil when every layer is meant.
    private static func layerList(_ f: JSONFields, layers: Int) throws -> [Int]? {
        guard let v = f.value("layers_to_transform"), !isOff(v) else { return nil }
        let list: [Int]
        if let i = v.intValue { list = [i] } else {
            guard let items = v.arrayValue?.compactMap(\.intValue), items.count == v.arrayValue?.count else {
                throw f.error("layers_to_transform", "expected an integer or a list of integers, found \(v.typeName)")
            }
            list = items
        }
        // A subset of layers cannot live in the every-layer TrainableParameterLayout.
        if let missing = (0..<layers).first(where: { !list.contains($0) }) {
            throw f.error("layers_to_transform", "\(v.compactText.prefix(40)) leaves out layer \(missing); qdist adapters cover every layer")
        }
        return list
    }
}
