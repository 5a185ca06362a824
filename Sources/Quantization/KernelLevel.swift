import CKernels

/// The instruction-set level the C kernels run at: the best the CPU has, or a lower one
/// named by the environment variable `NIBBLE_ISA` (`scalar`, `avx2`, `avxvnni`, `avx512`), so every
/// path can be run and measured on a machine that has it.
public enum KernelLevel {
    public static let variable = "NIBBLE_ISA"

    /// The level in use ("avx2"…).
    public static var active: String { String(cString: nb_isa_name(nb_active_isa())) }
    /// The best level this CPU supports.
    public static var detected: String { String(cString: nb_isa_name(nb_detected_isa())) }
    /// The levels this CPU can run, lowest first.
    public static var supported: [String] {
        [NB_ISA_SCALAR, NB_ISA_AVX2, NB_ISA_AVXVNNI, NB_ISA_AVX512, NB_ISA_NEON].filter { nb_isa_supported($0) != 0 }
            .map { String(cString: nb_isa_name($0)) }
    }

    /// What is wrong with `NIBBLE_ISA`, if anything: a name that is not a level, or a
    /// level this CPU lacks (the kernels would otherwise quietly run at the detected one).
    public static func environmentProblem(_ environment: [String: String]) -> String? {
        guard let value = environment[variable], !value.isEmpty else { return nil }
        let level = nb_parse_isa(value)
        if level < 0 {
            return "\(variable)=\(value) is not a kernel level (one of: scalar, avx2, avxvnni, avx512)"
        }
        if nb_isa_supported(nb_isa(UInt32(level))) == 0 {
            return "\(variable)=\(value): this CPU does not have it (it has: \(supported.joined(separator: ", ")))"
        }
        return nil
    }
}

/// How decode prefetches the weight rows it reads once a token (`nb_prefetch`): `nta` (the
/// non-temporal hint, and f32 rows fetched ahead in software: AMD Zen 5), `l2` (the T1 hint,
/// f32 rows left to the hardware prefetcher: Zen 3 and every CPU not in the C table) or `hw`
/// (the interleaved weights left to the hardware prefetchers too: Zen 4). Chosen per CPU
/// family and model, or named by `NIBBLE_PREFETCH`; results never depend on it, only speed.
public enum PrefetchProfile {
    public static let variable = "NIBBLE_PREFETCH"
    public static let names = ["nta", "l2", "hw"]

    /// The profile in use.
    public static var active: String { String(cString: nb_prefetch_name(nb_active_prefetch())) }
    /// The profile of this CPU's row in the table.
    public static var detected: String { String(cString: nb_prefetch_name(nb_detected_prefetch())) }
    /// The CPU as the table keys it ("AMD family 19h model 11h"; empty off x86).
    public static var cpuFamily: String { String(cString: nb_cpu_family()) }

    /// What is wrong with `NIBBLE_PREFETCH`, if anything.
    public static func environmentProblem(_ environment: [String: String]) -> String? {
        guard let value = environment[variable], !value.isEmpty else { return nil }
        if nb_parse_prefetch(value) < 0 {
            return "\(variable)=\(value) is not a prefetch profile (one of: \(names.joined(separator: ", ")))"
        }
        return nil
    }
}
