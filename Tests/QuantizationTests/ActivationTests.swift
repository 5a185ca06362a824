import CKernels
import Foundation
import Testing

extension KernelPaths {
    /// The MLP activations in C: every ISA level gives the scalar result bit for bit, and
    /// the scalar result is within a few ulp of the definitions computed in Double (up to
    /// 1e-7·|g| where the result is tiny: e^z of a large f32 argument z = −2u carries
    /// z's own rounding; transformers' f32 `0.5·g·(1 + tanh(u))` loses far more there).
    @Suite struct ActivationTests {
        static func reference(_ act: nb_mlp_activation, _ g: Double) -> Double {
            act == NB_MLP_SILU ? g / (1 + exp(-g))
                : 0.5 * g * (1 + tanh(0.7978845608028654 * (g + 0.044715 * g * g * g)))
        }

        @Test(arguments: [NB_MLP_SILU, NB_MLP_GELU_TANH], [1, 7, 16, 33, 1000])
        func levelsAgreeAndMatchTheDefinition(act: nb_mlp_activation, count: Int) {
            var rng = TestRNG(seed: UInt64(count) * 31 + UInt64(act.rawValue))
            // Ordinary values, and the ends: large magnitudes, zero, tiny, ±inf-bound.
            var gate = (0..<count).map { _ in rng.gaussian() * 4 }
            let specials: [Float] = [0, -0, 1e-30, -1e-30, 30, -30, 90, -90, 200, -200, 1e30, -1e30]
            for (i, v) in specials.enumerated() where i < count { gate[i] = v }
            let up = (0..<count).map { _ in rng.gaussian() }
            var scalar = gate
            withISA(NB_ISA_SCALAR) { nb_activation_gate(act, &scalar, up, Int64(count)) }
            for (i, g) in gate.enumerated() {
                let want = Self.reference(act, Double(g)) * Double(up[i])
                let got = Double(scalar[i])
                #expect(abs(got - want) <= 1e-6 * abs(want) + 1e-7 * abs(Double(g) * Double(up[i])) + 1e-37, "g = \(g): \(got) vs \(want)")
            }
            var plain = gate
            withISA(NB_ISA_SCALAR) { nb_activation_gate(act, &plain, nil, Int64(count)) }
            for (i, g) in gate.enumerated() {
                let want = Self.reference(act, Double(g))
                #expect(abs(Double(plain[i]) - want) <= 1e-6 * abs(want) + 1e-7 * abs(Double(g)) + 1e-37, "g = \(g)")
            }
            for isa in simdLevels {
                var out = gate
                withISA(isa) { nb_activation_gate(act, &out, up, Int64(count)) }
                #expect(out.map(\.bitPattern) == scalar.map(\.bitPattern), "\(isaName(isa))")
            }
        }
    }
}
