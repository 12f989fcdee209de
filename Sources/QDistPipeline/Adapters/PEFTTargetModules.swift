// PEFT's module matching: huggingface/peft src/peft/tuners/tuners_utils.py
// (check_target_module_exists, _maybe_include_all_linear_layers) and utils/other.py
// (match_target_against_key), as of peft 0.21.
import QDistIO
import QDistModel

/// Which modules of a Llama causal LM an adapter_config.json's `target_modules`,
/// `exclude_modules` and `layers_to_transform` select, decided by PEFT's own rules over the
/// module names PEFT would see (`model.layers.3.self_attn.q_proj`, `lm_head`, …).
///
/// qdist adapts the same linears in every decoder layer (that is what `LoRAConfig` and the
/// flat `TrainableParameterLayout` describe), so a selection that is not uniform across layers,
/// or that reaches a module other than a decoder linear (`lm_head`, `embed_tokens`, a whole
/// attention block), is refused with a message saying which module broke the rule — rather
/// than silently adapting something different from what PEFT would.
public enum PEFTTargetModules {
    /// `target_modules` as written: a list of names/suffixes, or one string (a regular
    /// expression that must match a whole module name, or `all-linear`).
    public enum Selector: Sendable, Equatable {
        case names([String])
        case pattern(String)
    }

    /// The linears `selector` picks in a model of `layers` decoder layers, in PEFT order.
    /// `exclude` has the same two forms; `layers` restricts list selectors to those layer
    /// indices, as PEFT's `layers_to_transform` does. Errors are messages for the caller to
    /// file under adapter_config.json.
    public static func resolve(_ selector: Selector, exclude: Selector?, layersToTransform: [Int]?,
                               layers: Int) throws(LoRAConfigError) -> [LoRATarget] {
        if case .pattern(let p) = selector, p.lowercased() == "all-linear" {
            // PEFT expands this to every nn.Linear but the output layer.
            return try uniform(Set(linearNames(layers: layers)).subtracting(excluded(exclude, layers: layers)), layers: layers)
        }
        let excludedNames = try excluded(exclude, layers: layers)
        var selected = Set<String>()
        switch selector {
        case .pattern(let p):
            let regex = try compile(p, key: "target_modules")
            selected = Set(allModuleNames(layers: layers).filter { (try? regex.wholeMatch(in: $0)) != nil })
        case .names(let entries):
            for entry in entries {
                let hits = allModuleNames(layers: layers).filter { $0 == entry || $0.hasSuffix("." + entry) }
                guard !hits.isEmpty else {
                    let known = LoRATarget.allCases.map(\.rawValue).joined(separator: ", ")
                    throw LoRAConfigError("target_modules: \"\(entry)\" names no module of a Llama model (decoder linears: \(known))")
                }
                selected.formUnion(hits)
            }
            if let only = layersToTransform {
                let allowed = Set(only)
                selected = selected.filter { name in layerIndex(of: name).map(allowed.contains) ?? false }
            }
        }
        return try uniform(selected.subtracting(excludedNames), layers: layers)
    }

    /// Every module name PEFT's `named_modules()` walk yields for a LlamaForCausalLM that a
    /// selector could plausibly hit: the decoder linears plus the containers and non-linear
    /// modules around them (so `self_attn` or `.*norm` are caught, as PEFT would reject them).
    static func allModuleNames(layers: Int) -> [String] {
        var names = ["model", "model.embed_tokens", "model.layers", "model.norm", "model.rotary_emb", "lm_head"]
        for i in 0..<layers {
            let p = "model.layers.\(i)"
            names += [p, p + ".self_attn", p + ".mlp", p + ".mlp.act_fn", p + ".input_layernorm", p + ".post_attention_layernorm"]
            names += LoRATarget.allCases.map { p + "." + $0.modulePath }
        }
        return names
    }

    static func linearNames(layers: Int) -> [String] {
        (0..<layers).flatMap { i in LoRATarget.allCases.map { "model.layers.\(i).\($0.modulePath)" } }
    }

    /// The `N` of `model.layers.N.…` (PEFT's first numbered segment).
    static func layerIndex(of name: String) -> Int? {
        let parts = name.split(separator: ".")
        guard parts.count >= 4, parts[0] == "model", parts[1] == "layers" else { return nil }
        return Int(parts[2])
    }

    private static func excluded(_ exclude: Selector?, layers: Int) throws(LoRAConfigError) -> Set<String> {
        switch exclude {
        case nil: return []
        case .names(let entries)?:
            return Set(allModuleNames(layers: layers).filter { name in entries.contains { name == $0 || name.hasSuffix("." + $0) } })
        case .pattern(let p)?:
            let regex = try compile(p, key: "exclude_modules")
            return Set(allModuleNames(layers: layers).filter { (try? regex.wholeMatch(in: $0)) != nil })
        }
    }

    private static func compile(_ pattern: String, key: String) throws(LoRAConfigError) -> Regex<AnyRegexOutput> {
        do { return try Regex(pattern) } catch {
            throw LoRAConfigError("\(key): \"\(pattern)\" is not a regular expression qdist can read (\(error))")
        }
    }

    /// The targets when `selected` is exactly "these linears in every layer"; otherwise the
    /// first module that breaks the rule.
    private static func uniform(_ selected: Set<String>, layers: Int) throws(LoRAConfigError) -> [LoRATarget] {
        let linears = Set(linearNames(layers: layers))
        if let stray = selected.subtracting(linears).sorted().first {
            throw LoRAConfigError("target_modules selects \(stray), which qdist cannot adapt (only the decoder layers' q/k/v/o/gate/up/down projections)")
        }
        let targets = LoRATarget.allCases.filter { t in selected.contains("model.layers.0.\(t.modulePath)") }
        guard !targets.isEmpty else { throw LoRAConfigError("target_modules selects no linear of the model's \(layers) layers") }
        for i in 0..<layers {
            for t in LoRATarget.allCases where selected.contains("model.layers.\(i).\(t.modulePath)") != targets.contains(t) {
                let (here, first) = targets.contains(t) ? ("lacks", "has") : ("has", "lacks")
                throw LoRAConfigError("target_modules: layer \(i) \(here) \(t.rawValue) while layer 0 \(first) it; qdist adapts the same linears in every layer")
            }
        }
        return targets
    }
}
