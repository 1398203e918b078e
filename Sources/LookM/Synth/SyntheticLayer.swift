#if canImport(Glibc)
    import Glibc
#endif

/// The generative model behind `lookm synth`: one layer's tensors with the structure LOOK-M relies
/// on, not white noise.
/// - Attention sinks: the first token's key points along a direction every query shares, so it
///   collects most of each row's attention (and, as in real models, carries a small value).
/// - Text over images: text keys lean towards a second shared query direction, image keys away.
/// - Image locality: an image's keys (and values) are a common mean plus a smooth low-frequency
///   field over the patch grid, so neighbouring patches are alike and merging has partners.
/// Scores are then computed exactly from the stored (rounded) queries and keys.
struct SyntheticLayer {
    let options: SynthOptions
    let prompt: SyntheticPrompt
    let layer: Int

    private var L: Int { options.seqLen }
    private var D: Int { options.headDim }

    /// Directions shared by a kv head's keys and its query heads.
    struct HeadDirections {
        var sink: [Float]
        var text: [Float]
    }

    private func rng(_ kind: UInt64, _ head: Int) -> SeededRandom {
        SeededRandom(seed: options.seed, stream: [UInt64(layer), kind, UInt64(head)])
    }

    func directions(kvHead g: Int) -> HeadDirections {
        var r = rng(1, g)
        return HeadDirections(sink: r.unitVector(D), text: r.unitVector(D))
    }

    /// Keys and values of kv head `g`, `L x D` each, already rounded to the dump's element type.
    func keysAndValues(kvHead g: Int, _ dirs: HeadDirections) -> (key: [Float], value: [Float]) {
        var r = rng(2, g)
        var key = [Float](repeating: 0, count: L * D)
        var value = key
        // Per-head strengths, in logits: how much the sink and the text direction add to q.k*scale.
        let sinkLogit = Float(5 + 3 * r.uniform())
        let textLogit = Float(0.8 + 1.2 * r.uniform())
        let imageLogit = Float(-0.2 - 0.4 * r.uniform())

        // Per image: a mean key and value, and a smooth field made of a few low-frequency waves.
        let grid = max(1, Int(Double(options.imageTokens).squareRoot().rounded(.up)))
        struct Wave {
            var fx: Float
            var fy: Float
            var phase: Float
            var k: [Float]
            var v: [Float]
        }
        var means: [(k: [Float], v: [Float])] = []
        var waves: [[Wave]] = []
        for _ in 0..<options.images {
            means.append(((0..<D).map { _ in 0.7 * r.normal() }, (0..<D).map { _ in 0.7 * r.normal() }))
            waves.append(
                (0..<4).map { _ in
                    Wave(
                        fx: Float(r.int(in: 0..<3)), fy: Float(r.int(in: 0..<3)),
                        phase: Float(2 * Double.pi * r.uniform()),
                        k: (0..<D).map { _ in 0.6 * r.normal() }, v: (0..<D).map { _ in 0.6 * r.normal() })
                })
        }
        var patch = [Int](repeating: 0, count: options.images)
        for t in 0..<L {
            let row = t * D
            if let i = prompt.imageOf[t] {
                let p = patch[i]
                patch[i] += 1
                let y = Float(p / grid)
                let x = Float(p % grid)
                for d in 0..<D {
                    key[row + d] = means[i].k[d] + 0.35 * r.normal() + imageLogit * dirs.text[d]
                    value[row + d] = means[i].v[d] + 0.35 * r.normal()
                }
                for w in waves[i] {
                    let c = Float(cos(Double(2 * Float.pi * (w.fx * y + w.fy * x) / Float(grid) + w.phase)))
                    for d in 0..<D {
                        key[row + d] += c * w.k[d]
                        value[row + d] += c * w.v[d]
                    }
                }
            } else {
                // Token 0 is the main sink, the next two weaker ones.
                let sink: Float = t == 0 ? sinkLogit : (t < 3 ? 0.3 * sinkLogit : 0)
                let valueScale: Float = t == 0 ? 0.1 : 1
                for d in 0..<D {
                    key[row + d] = r.normal() + textLogit * dirs.text[d] + sink * dirs.sink[d]
                    value[row + d] = valueScale * r.normal()
                }
            }
        }
        round(&key)
        round(&value)
        return (key, value)
    }

    /// `rows x D` queries of query head `h`: noise plus the shared sink and text directions, scaled
    /// so that a key's component along a direction is its logit bonus (q has sqrt(D) along it).
    func queries(head h: Int, rows: Int, stream: UInt64, _ dirs: HeadDirections) -> [Float] {
        var r = rng(stream, h)
        let root = Float(D).squareRoot()
        let a = root * Float(0.9 + 0.4 * r.uniform())
        let b = root * Float(0.6 + 0.6 * r.uniform())
        var q = [Float](repeating: 0, count: rows * D)
        for t in 0..<rows {
            for d in 0..<D { q[t * D + d] = r.normal() + a * dirs.sink[d] + b * dirs.text[d] }
        }
        round(&q)
        return q
    }

    /// Rounds to the dump's element type and back, so that what is stored is what scores see.
    private func round(_ x: inout [Float]) {
        ElementConversion.round(&x, to: options.dtype)
    }
}
