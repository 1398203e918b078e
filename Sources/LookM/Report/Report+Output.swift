/// `report --by`: one summary, a row per layer, or a row per (layer, query head).
public enum ReportLevel: String, CaseIterable, Sendable {
    case total, layer, head
}

extension Report {
    public func render(_ format: OutputFormat, by level: ReportLevel) throws -> String {
        switch format {
        case .json: return try JSONOutput.encode(self)
        case .csv: return table(level).csv
        case .table: return level == .total ? summaryText : table(level).text
        }
    }

    private var fidelityByLayer: [Int: FidelityRow] {
        Dictionary(uniqueKeysWithValues: (fidelity?.layers ?? []).map { ($0.layer, $0) })
    }

    /// The rows of `--by layer|head` (and the one row of `--by total` as CSV).
    func table(_ level: ReportLevel) -> TextTable {
        let f = fidelity
        switch level {
        case .total:
            var t = TextTable([
                "kept", "kept_text", "kept_image", "seq_len", "saved_percent", "kv_bytes_original", "kv_bytes_cache",
                "kv_bytes_disk", "merged", "dropped", "output_error", "output_error_worst", "output_cosine",
                "output_cosine_worst", "recall", "recall_worst", "recall_kept", "recall_merged", "recall_text",
                "recall_image",
            ])
            t.add([
                cell(memory.kept, 1), cell(memory.keptText, 1), cell(memory.keptImage, 1), "\(seqLen)",
                cell(memory.savedPercent, 1),
                "\(memory.kvBytesOriginal)", "\(memory.kvBytesCache)", "\(memory.kvBytesDisk)", "\(memory.merged)",
                "\(memory.dropped)",
                cell(f?.outputError?.mean), cell(f?.outputError?.worst), cell(f?.outputCosine?.mean),
                cell(f?.outputCosine?.worst),
                cell(f?.recall.mean), cell(f?.recall.worst), cell(f?.recallKept), cell(f?.recallMerged),
                cell(f?.recallText), cell(f?.recallImage),
            ])
            return t
        case .layer:
            var t = TextTable([
                "layer", "kept", "kept_text", "kept_image", "saved_percent", "merged", "dropped",
                "output_error", "output_cosine", "recall", "recall_kept", "recall_merged", "recall_text",
                "recall_image",
            ])
            let byLayer = fidelityByLayer
            for m in layers {
                let r = byLayer[m.layer ?? -1]
                t.add([
                    "\(m.layer ?? 0)", cell(m.kept, 0), cell(m.keptText, 1), cell(m.keptImage, 1),
                    cell(m.savedPercent, 1),
                    "\(m.merged)", "\(m.dropped)", cell(r?.outputError), cell(r?.outputCosine), cell(r?.recall),
                    cell(r?.recallKept), cell(r?.recallMerged), cell(r?.recallText), cell(r?.recallImage),
                ])
            }
            return t
        case .head:
            var t = TextTable([
                "layer", "head", "output_error", "output_cosine", "recall", "recall_kept", "recall_merged",
                "recall_text", "recall_image",
            ])
            for r in f?.heads ?? [] {
                t.add([
                    "\(r.layer)", "\(r.head ?? 0)", cell(r.outputError), cell(r.outputCosine), cell(r.recall),
                    cell(r.recallKept), cell(r.recallMerged), cell(r.recallText), cell(r.recallImage),
                ])
            }
            return t
        }
    }

    /// `--by total` for people.
    var summaryText: String {
        var lines = ["\(cache)" + (reference.map { ": against \($0)" } ?? "")]
        func row(_ label: String, _ value: String) { lines.append("  " + label.padding(14) + value) }
        row("method", MethodText.describe(method))
        let m = memory
        row(
            "kept",
            "\(cell(m.kept, 1)) of \(seqLen) tokens per kv head (\(Formatting.percent(Int((m.kept * 10).rounded()), of: seqLen * 10))): \(cell(m.keptText, 1)) text, \(cell(m.keptImage, 1)) non-text"
        )
        row(
            "K/V",
            "\(Formatting.bytes(m.kvBytesOriginal)) -> \(Formatting.bytes(m.kvBytesCache)) in memory (\(cell(m.savedPercent, 1)) % saved, \(cell(m.ratio, 2))x); \(Formatting.bytes(m.kvBytesDisk)) on disk"
        )
        if let t = targetBytes {
            row(
                "target",
                "\(Formatting.bytes(t)) of K/V in memory: \(m.kvBytesCache <= t ? "met" : "NOT met") (\(Formatting.bytes(m.kvBytesCache)))"
            )
        }
        row("merged", "\(m.merged) evicted tokens folded into slots, \(m.dropped) dropped (over kv heads)")
        guard let f = fidelity else {
            lines.append("  (fidelity needs --reference DUMP, the dump this cache was made from)")
            return lines.joined(separator: "\n")
        }
        func stat(_ s: Statistic?, _ what: String = "head") -> String {
            guard let s else { return "-" }
            return "mean \(cell(s.mean))  worst \(cell(s.worst)) (layer \(s.worstLayer), \(what) \(s.worstHead))"
        }
        row(
            "queries",
            f.querySource == .probe
                ? "probe queries (probe_query)"
                : f.querySource == .prompt
                    ? "the last \(Fidelity.promptQueries) prompt queries (query)"
                    : "none: mass recall from attn_score only")
        row("output error", stat(f.outputError))
        row("output cosine", stat(f.outputCosine))
        row("mass recall", stat(f.recall) + "; kept \(cell(f.recallKept)) + merged \(cell(f.recallMerged))")
        row("by modality", "recall of the text mass \(cell(f.recallText)), of the image mass \(cell(f.recallImage))")
        row("key shift", stat(f.keyShift, "kv head"))
        row("value shift", stat(f.valueShift, "kv head"))
        return lines.joined(separator: "\n")
    }
}
