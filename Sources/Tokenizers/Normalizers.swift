import Foundation

// tokenizer.json normalizers (tokenizers/src/normalizers): applied, in order, to each piece of
// input text between added tokens, before pre-tokenization.

enum Normalizers {
    /// Applies `steps` to one piece of text (UTF-8).
    static func apply(_ steps: [HFNormalizer], to text: [UInt8]) -> [UInt8] {
        var text = text
        for step in steps {
            switch step {
            case .nfc, .nfkc, .nfd, .nfkd:
                // ASCII is invariant under every normalization form.
                guard text.contains(where: { $0 >= 0x80 }) else { continue }
                let s = String(decoding: text, as: UTF8.self)
                let normalized: String
                switch step {
                case .nfc: normalized = s.precomposedStringWithCanonicalMapping
                case .nfkc: normalized = s.precomposedStringWithCompatibilityMapping
                case .nfd: normalized = s.decomposedStringWithCanonicalMapping
                default: normalized = s.decomposedStringWithCompatibilityMapping
                }
                text = Array(normalized.utf8)
            case let .prepend(prefix):
                // `Prepend`: only a non-empty piece gets the prefix.
                if !text.isEmpty { text = prefix + text }
            case let .replace(pattern, content):
                text = replaceAll(text, pattern, content)
            }
        }
        return text
    }

    /// Every non-overlapping occurrence of `pattern`, left to right, replaced by `content`.
    static func replaceAll(_ text: [UInt8], _ pattern: [UInt8], _ content: [UInt8]) -> [UInt8] {
        guard !pattern.isEmpty, text.count >= pattern.count else { return text }
        var out: [UInt8] = []
        var i = 0
        var changed = false
        text.withUnsafeBufferPointer { buffer in
            while let match = SpecialTokenPartitioner.find(pattern, in: buffer, from: i, to: buffer.count) {
                if !changed { out.reserveCapacity(text.count + text.count / 2); changed = true }
                out.append(contentsOf: buffer[i..<match])
                out.append(contentsOf: content)
                i = match + pattern.count
            }
            if changed { out.append(contentsOf: buffer[i...]) }
        }
        return changed ? out : text
    }
}
