/// The token layout of a synthetic chat prompt: a system prompt first (whose first token becomes the
/// attention sink), short text between images, the question last, as LLaVA-style prompts are.
struct SyntheticPrompt {
    let tokens: TokenTable
    /// For every position, the image it belongs to, or nil for text.
    let imageOf: [Int?]

    init(_ o: SynthOptions, rng: inout SeededRandom) {
        let text = o.textTokens
        var before = text
        var between = [Int]()
        var after = 0
        if o.images > 0 {
            before = min(text, max(text > 0 ? 1 : 0, text * 35 / 100))
            let gaps = o.images - 1
            let betweenTotal = gaps > 0 ? (text * 15 / 100) : 0
            between = (0..<gaps).map { g in betweenTotal / gaps + (g < betweenTotal % gaps ? 1 : 0) }
            after = text - before - betweenTotal
        }
        var modality: [Modality] = []
        var segment: [Int32] = []
        var ids: [Int64] = []
        var imageOf: [Int?] = []
        func addText(_ n: Int) {
            for _ in 0..<n {
                // Token 1 is the BOS of Llama-family vocabularies; the rest are arbitrary ids.
                ids.append(modality.isEmpty ? 1 : Int64(rng.int(in: 3..<32000)))
                modality.append(.text)
                segment.append(-1)
                imageOf.append(nil)
            }
        }
        addText(before)
        for i in 0..<o.images {
            for _ in 0..<o.imageTokens {
                modality.append(.image)
                segment.append(Int32(i))
                ids.append(-1)
                imageOf.append(i)
            }
            if i < between.count { addText(between[i]) }
        }
        addText(after)
        tokens = TokenTable(modality: modality, segment: segment, ids: ids)
        self.imageOf = imageOf
    }
}
