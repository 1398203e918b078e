extension InspectReport {
    /// The summary a person reads first.
    public var text: String {
        let ext = extensions.map { $0.isEmpty ? "" : " (" + $0.joined(separator: ", ") + ")" } ?? ""
        var lines = ["\(file): lookm-kv-\(kind.rawValue) v\(formatVersion)\(ext), valid"]
        func row(_ label: String, _ value: String) { lines.append("  " + label.padding(11) + value) }

        if let model { row("model", model) }
        let kv =
            shape.numKVHeads == shape.numHeads
            ? "" : " (\(shape.numKVHeads) kv heads, GQA \(shape.numHeads / shape.numKVHeads):1)"
        row(
            "shape",
            "\(shape.numLayers) layers x \(shape.numHeads) heads\(kv) x head_dim \(shape.headDim), \(dtype.rawValue)")
        for (range, w) in Formatting.runs(layers.map { $0.slidingWindow ?? 0 }) where w > 0 {
            row("window", "\(Formatting.layers(range)): sliding window \(w) (holds the last \(w - 1) positions)")
        }
        if let nextPosition {
            row("next pos", "\(nextPosition) (the rotary position after the prompt; seq_len is \(shape.seqLen))")
        }
        let order = Modality.allCases.map(\.name)
        let parts = order.compactMap { m in tokens.counts[m].map { "\($0) \(m)" } }
        row("tokens", "\(shape.seqLen) = " + parts.joined(separator: " + "))
        if !tokens.spans.isEmpty {
            let shown = tokens.spans.prefix(6).map { "[\($0.start), \($0.end))" }.joined(separator: " ")
            let more = tokens.spans.count > 6 ? " ..." : ""
            let sizes = Set(tokens.spans.map(\.count))
            let kinds = Set(tokens.spans.map(\.modality))
            let what = kinds.count == 1 ? kinds.first! : "non-text"
            let size = sizes.count == 1 ? " x \(sizes.first!) tokens" : " spans"
            row(
                what == "image" ? "images" : "spans",
                "\(tokens.spans.count)\(size) \(what == "image" ? "" : "(\(what)) ")at \(shown)\(more)")
        }
        if kind == .dump {
            for (range, names) in Formatting.runs(layers.map { describeDatasets($0) }) {
                row(range.count == layers.count ? "datasets" : Formatting.layers(range), names)
            }
            if let attnScale { row("attn_scale", "\(Float(attnScale))") }
        }
        if let cache {
            row("method", MethodText.describe(cache.method))
            if let q = cache.quant {
                row(
                    "quantised",
                    "\(q.scheme): keys per channel and values per slot in groups of \(q.group)"
                        + (q.residual > 0
                            ? ", the last \(q.residual) values (and keys past a multiple of \(q.residual)) unquantised"
                            : ""))
            }
            row(
                "source",
                "\(cache.source.name) (\(Formatting.bytes(cache.source.size)), mtime \(cache.source.mtime)), lookm \(cache.lookmVersion)"
            )
            for (range, kept) in Formatting.runs(layers.map { $0.kept ?? 0 }) {
                let merged = layers[range].reduce(0) { $0 + ($1.merged ?? 0) }
                // Ragged layers (a head allocation): the range the kv heads' own counts span.
                let perHead = layers[range].compactMap(\.keptPerHead).flatMap { $0 }
                let heads =
                    perHead.isEmpty
                    ? "" : " (mean over kv heads, which keep \(perHead.min() ?? 0)-\(perHead.max() ?? 0))"
                row(
                    "kept",
                    "\(Formatting.layers(range)): \(kept) of \(shape.seqLen) tokens (\(Formatting.percent(kept, of: shape.seqLen)))\(heads), \(merged) merged"
                )
            }
        }
        let perLayer =
            Set(layers.map(\.kvBytes)).count == 1 ? "\(Formatting.bytes(layers.first?.kvBytes ?? 0)) per layer, " : ""
        row(
            "K/V",
            "\(perLayer)\(Formatting.bytes(kvBytes)) in all; \(Formatting.bytes(kvStoredBytes)) on disk (\(layers.first?.storage ?? "-"))"
        )
        row("file", Formatting.bytes(fileBytes))
        return lines.joined(separator: "\n")
    }

    private func describeDatasets(_ l: Layer) -> String {
        (l.datasets ?? []).map { name in
            switch name {
            case LayerDataset.windowAttn.rawValue: return "window_attn (\(l.windowRows ?? 0) rows)"
            case LayerDataset.probeQuery.rawValue: return "probe_query (\(probes ?? 0) probes)"
            default: return name
            }
        }.joined(separator: ", ")
    }

}
