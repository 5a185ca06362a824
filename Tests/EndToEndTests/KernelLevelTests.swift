import Foundation
import Testing

/// NIBBLE_ISA picks a lower kernel level than the CPU's best; `info` says which is in use.
@Suite struct KernelLevelTests {
    func levels() throws -> (active: String, all: [String]) {
        let run = try nibble(["info", "--model", try requireModel()])
        #expect(run.status == 0, "\(run.stderr)")
        let line = try #require(run.stdout.split(separator: "\n").first { $0.hasPrefix("kernels") })
        // "kernels        avx512 (this CPU: scalar, avx2, avxvnni, avx512; NIBBLE_ISA picks a lower one)"
        let words = line.split(whereSeparator: { " (),;:".contains($0) }).map(String.init)
        let all = words.filter { ["scalar", "avx2", "avxvnni", "avx512", "neon"].contains($0) }
        return (words[1], Array(all.dropFirst()))
    }

    @Test func everySupportedLevelCanBeChosen() throws {
        let (active, all) = try levels()
        // The best level unless the tests themselves run under NIBBLE_ISA (a lower one).
        let forced = ProcessInfo.processInfo.environment["NIBBLE_ISA"]
        #expect(all.first == "scalar" && active == (forced ?? all.last), "\(all), active \(active)")
        for level in all {
            let run = try nibble(["info", "--model", try requireModel(), "--json"], environment: ["NIBBLE_ISA": level])
            #expect(run.status == 0, "\(level): \(run.stderr)")
            #expect(try jsonObject(run.stdout)["kernels"] as? String == level)
            // The model runs at that level too.
            let gen = try nibble(["generate", "--model", try requireModel(), "--prompt", "Hello", "--max-tokens", "3",
                                  "--temperature", "0", "--json"], environment: ["NIBBLE_ISA": level])
            #expect(gen.status == 0, "\(level): \(gen.stderr)")
        }
    }

    @Test func unknownOrMissingLevelsAreRefused() throws {
        let bad = try nibble(["info", "--model", try requireModel()], environment: ["NIBBLE_ISA": "sse9"])
        #expect(bad.status == 1)
        #expect(bad.stderr == "Error: NIBBLE_ISA=sse9 is not a kernel level (one of: scalar, avx2, avxvnni, avx512)\n")
        let (_, all) = try levels()
        if let missing = ["avx2", "avxvnni", "avx512"].first(where: { !all.contains($0) }) {
            let run = try nibble(["info", "--model", try requireModel()], environment: ["NIBBLE_ISA": missing])
            #expect(run.status == 1)
            #expect(run.stderr.contains("this CPU does not have it"), "\(run.stderr)")
        }
    }

    /// NIBBLE_PREFETCH picks how decode prefetches its rows; only speed may depend on it. The
    /// f32 and q4 decode loops are the ones it changes (f32: rows fetched in software or not;
    /// q4: the non-temporal or the T1 hint, or none), so all give the same greedy tokens.
    @Test func everyPrefetchProfileGivesTheSameTokens() throws {
        for precision in ["f32", "q4"] {
            var tokens: [String: [Int]] = [:]
            for profile in ["nta", "l2", "hw"] {
                let info = try nibble(["info", "--model", try requireModel(), "--json"], environment: ["NIBBLE_PREFETCH": profile])
                #expect(info.status == 0, "\(profile): \(info.stderr)")
                #expect(try jsonObject(info.stdout)["prefetch"] as? String == profile)
                let run = try nibble(["generate", "--model", try requireModel(), "--precision", precision, "--prompt",
                                      "The capital of France is", "--max-tokens", "12", "--temperature", "0", "--json"],
                                     environment: ["NIBBLE_PREFETCH": profile])
                #expect(run.status == 0, "\(precision) \(profile): \(run.stderr)")
                tokens[profile] = try #require(jsonObject(run.stdout)["tokens"] as? [Int], "\(run.stdout)")
            }
            #expect((tokens["nta"]?.count ?? 0) > 0 && tokens["nta"] == tokens["l2"] && tokens["nta"] == tokens["hw"],
                    "\(precision): \(tokens)")
        }
        let bad = try nibble(["info", "--model", try requireModel()], environment: ["NIBBLE_PREFETCH": "t0"])
        #expect(bad.status == 1)
        #expect(bad.stderr == "Error: NIBBLE_PREFETCH=t0 is not a prefetch profile (one of: nta, l2, hw)\n")
    }
}
