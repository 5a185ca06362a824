import Foundation

/// The `Prompts` folder: fallback chat templates (`templates/*.jinja`) and
/// system-prompt presets (`*.md`).
public enum PromptLibrary {
    /// A missing template or preset: names what was asked for and what exists.
    public struct NotFound: Error, CustomStringConvertible {
        public var description: String
    }

    /// `$NIBBLE_PROMPTS_DIR`, else the first `Prompts` folder containing `templates/`
    /// found walking up from the executable's directory (covers `.build/release/nibble`
    /// and the test bundles under `.build-test/…`), else nil.
    public static func directory() -> URL? {
        let fm = FileManager.default
        if let env = ProcessInfo.processInfo.environment["NIBBLE_PROMPTS_DIR"], !env.isEmpty {
            return URL(fileURLWithPath: env, isDirectory: true)
        }
        let executable = URL(fileURLWithPath: CommandLine.arguments.first ?? "").resolvingSymlinksInPath()
        var candidates = [executable.deletingLastPathComponent()]
        if let bundle = Bundle.main.executableURL?.resolvingSymlinksInPath() { candidates.append(bundle.deletingLastPathComponent()) }
        candidates.append(URL(fileURLWithPath: fm.currentDirectoryPath, isDirectory: true))
        for start in candidates {
            var dir = start.standardizedFileURL
            while true {
                let prompts = dir.appendingPathComponent("Prompts", isDirectory: true)
                var isDir: ObjCBool = false
                if fm.fileExists(atPath: prompts.appendingPathComponent("templates").path, isDirectory: &isDir), isDir.boolValue {
                    return prompts
                }
                let parent = dir.deletingLastPathComponent()
                if parent.path == dir.path { break }
                dir = parent
            }
        }
        return nil
    }

    private static func names(in folder: URL?, extension ext: String) -> [String] {
        guard let folder, let files = try? FileManager.default.contentsOfDirectory(atPath: folder.path) else { return [] }
        return files.filter { $0.hasSuffix("." + ext) && !$0.hasPrefix(".") }.map { String($0.dropLast(ext.count + 1)) }.sorted()
    }

    /// Names of `Prompts/templates/*.jinja`.
    public static func templateNames() -> [String] {
        names(in: directory()?.appendingPathComponent("templates", isDirectory: true), extension: "jinja")
    }

    /// A chat template by name (`Prompts/templates/NAME.jinja`) or from a file: an
    /// existing path, or anything containing "/" or ending in ".jinja", is read as a file.
    /// - Throws: `NotFound` naming the file or template and the available names;
    ///   `TemplateError` when the template does not parse.
    public static func template(_ nameOrFile: String) throws -> ChatTemplate {
        let fm = FileManager.default
        if fm.fileExists(atPath: nameOrFile) || nameOrFile.contains("/") || nameOrFile.hasSuffix(".jinja") {
            guard let data = fm.contents(atPath: nameOrFile) else {
                throw NotFound(description: "\(nameOrFile): no such template file")
            }
            return try ChatTemplate(source: String(decoding: data, as: UTF8.self), name: nameOrFile)
        }
        guard let dir = directory() else {
            throw NotFound(description: "template '\(nameOrFile)': no Prompts/templates folder found (set NIBBLE_PROMPTS_DIR)")
        }
        let file = dir.appendingPathComponent("templates/\(nameOrFile).jinja")
        guard let data = fm.contents(atPath: file.path) else {
            throw NotFound(description: "template '\(nameOrFile)' not found in \(dir.path)/templates (available: \(templateNames().joined(separator: ", ")))")
        }
        return try ChatTemplate(source: String(decoding: data, as: UTF8.self), name: "\(nameOrFile).jinja")
    }

    /// Names of the system-prompt presets `Prompts/*.md`.
    public static func presetNames() -> [String] {
        names(in: directory(), extension: "md")
    }

    /// The text of `Prompts/NAME.md`.
    public static func preset(_ name: String) throws -> String {
        guard let dir = directory() else {
            throw NotFound(description: "preset '\(name)': no Prompts folder found (set NIBBLE_PROMPTS_DIR)")
        }
        guard let data = FileManager.default.contents(atPath: dir.appendingPathComponent("\(name).md").path) else {
            throw NotFound(description: "preset '\(name)' not found in \(dir.path) (available: \(presetNames().joined(separator: ", ")))")
        }
        return String(decoding: data, as: UTF8.self)
    }
}
