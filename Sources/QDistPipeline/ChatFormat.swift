/// Wraps a user message in a model's chat format. qdist knows ChatML (SmolLM2, Qwen2: tokens
/// `<|im_start|>` / `<|im_end|>`); a default system prompt is taken from the model's Jinja
/// chat template when it hard-codes one, as SmolLM2's and Qwen2's do.
public struct ChatFormat: Sendable, Equatable {
    public var systemPrompt: String?

    /// The ChatML format, if the vocabulary has its tokens; nil otherwise.
    public static func detect(hasToken: (String) -> Bool, chatTemplate: String?, systemPrompt: String?) -> ChatFormat? {
        guard hasToken("<|im_start|>") && hasToken("<|im_end|>") else { return nil }
        return ChatFormat(systemPrompt: systemPrompt ?? chatTemplate.flatMap(defaultSystemPrompt(in:)))
    }

    /// The text of `<|im_start|>system\n…<|im_end|>` written literally in a Jinja template.
    static func defaultSystemPrompt(in template: String) -> String? {
        for marker in ["<|im_start|>system\\n", "<|im_start|>system\n"] {
            guard let start = template.range(of: marker) else { continue }
            let rest = template[start.upperBound...]
            guard let end = rest.range(of: "<|im_end|>") else { continue }
            let text = String(rest[..<end.lowerBound])
            // A template that inserts messages[0]['content'] here has no literal default.
            if text.contains("{{") || text.contains("'") { continue }
            return text
        }
        return nil
    }

    /// The prompt text for one user turn, ending where the assistant's answer begins.
    public func prompt(user: String) -> String {
        var s = ""
        if let system = systemPrompt { s += "<|im_start|>system\n\(system)<|im_end|>\n" }
        return s + "<|im_start|>user\n\(user)<|im_end|>\n<|im_start|>assistant\n"
    }
}
