import Foundation

/// The name people know a model by: its file name without the extension and the
/// quantization suffix ("SmolLM2-135M-Instruct" from `SmolLM2-135M-Instruct.Q4_1.gguf`,
/// "Qwen3-4B" from `Qwen3-4B-Q4_K_M.gguf`), or a folder's name. `general.name` is often a
/// converter's guess ("Smollm2 135M 8k Lc100K Mix1 Ep2"), so it is shown beside, not instead.
public enum ModelName {
    public static func display(forPath path: String) -> String {
        var name = URL(fileURLWithPath: path).lastPathComponent
        for ext in [".gguf", ".bin"] where name.lowercased().hasSuffix(ext) { name.removeLast(ext.count) }
        // "-GGUF", then the quantization type, each after a '.', '-' or '_'.
        for pattern in [#"[-_.]gguf$"#, #"[-_.](i?q[1-8](_[0-9a-z]+)*|[bf]f?16|f32|fp(16|32)|mxfp4)$"#] {
            if let range = name.range(of: pattern, options: [.regularExpression, .caseInsensitive]), range.lowerBound > name.startIndex {
                name.removeSubrange(range)
            }
        }
        return name.isEmpty ? URL(fileURLWithPath: path).lastPathComponent : name
    }
}
