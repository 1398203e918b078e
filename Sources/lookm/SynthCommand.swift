import ArgumentParser
import LookM

extension ElementType: ExpressibleByArgument {
    /// Tensor types only: float64 is allowed for scores in a dump, never for keys and values.
    public init?(argument: String) {
        guard argument != ElementType.float64.rawValue else { return nil }
        self.init(rawValue: argument)
    }

    public static var allValueStrings: [String] { [float16, bfloat16, float32].map(\.rawValue) }
}

/// `--codec` values; the level comes from `--level`.
enum CodecName: String, CaseIterable, ExpressibleByArgument {
    case none, zstd, deflate
}

struct SynthCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "synth",
        abstract: "Write a realistic synthetic dump (for demos, tests and benchmarks).",
        discussion: """
            Text tokens are spread before, between and after the images as in chat prompts. The \
            first token is an attention sink, text tokens draw more attention than image tokens, \
            neighbouring image patches have similar keys, and attn_score is computed exactly from \
            the generated queries and keys (causal softmax). The same seed and shape give the same \
            file. Exact scores cost layers x heads x tokens^2 x head_dim: keep test dumps small.
            """)

    @Option(name: [.short, .customLong("output")], help: ArgumentHelp("The dump to write.", valueName: "file"))
    var output: String

    @Flag(help: "Replace an existing output file.")
    var force = false

    @Option(parsing: .unconditional, help: "Layers.") var layers = 4
    @Option(parsing: .unconditional, help: "Query heads.") var heads = 8
    @Option(
        name: .customLong("kv-heads"), parsing: .unconditional,
        help: "Key/value heads (default: --heads; fewer means grouped-query attention).")
    var kvHeads: Int?
    @Option(name: .customLong("head-dim"), parsing: .unconditional, help: "Head dimension.") var headDim = 64
    @Option(parsing: .unconditional, help: "Images in the prompt.") var images = 2
    @Option(name: .customLong("image-tokens"), parsing: .unconditional, help: "Tokens per image (LLaVA-1.5: 576).")
    var imageTokens = 144
    @Option(name: .customLong("text-tokens"), parsing: .unconditional, help: "Text tokens in the prompt.")
    var textTokens = 160
    @Option(help: "Element type of keys, values and queries.") var dtype: ElementType = .float16
    @Option(parsing: .unconditional, help: "Random seed.") var seed: UInt64 = 0
    @Flag(help: "Store the prefill queries (/layers/i/query).") var query = false
    @Option(parsing: .unconditional, help: "Store this many probe queries (/layers/i/probe_query, /probe/position).")
    var probes = 0
    @Option(parsing: .unconditional, help: "Store the attention rows of the last N queries (/layers/i/window_attn).")
    var window = 0
    @Option(help: "Codec of the tensors (exporters usually write none).") var codec: CodecName = .none
    @Option(parsing: .unconditional, help: "Codec level (zstd default 3, deflate default 4).") var level: Int?
    @Option(
        parsing: .unconditional,
        help: "Worker threads (default: SLURM_CPUS_PER_TASK, else every core); the file is the same for any value.")
    var threads: Int?

    func run() throws {
        var o = SynthOptions()
        o.layers = layers
        o.heads = heads
        o.kvHeads = kvHeads
        o.headDim = headDim
        o.images = images
        o.imageTokens = imageTokens
        o.textTokens = textTokens
        o.dtype = dtype
        o.seed = seed
        o.storeQuery = query
        o.probes = probes
        o.window = window
        o.codec = try Codec.parse(codec.rawValue, level: level)
        let start = ContinuousClock.now
        let progress = Progress("synth: layer")
        let summary = try SyntheticDump.write(
            o, to: output, force: force, threads: try Parallel.workers(threads, flag: "--threads")
        ) {
            progress.update($0, of: $1)
        }
        progress.finish()
        let seconds = (ContinuousClock.now - start).seconds
        printError(
            "lookm: wrote \(summary.path): \(layers) layers, \(summary.seqLen) tokens, \(Formatting.bytes(summary.fileBytes)) in \(seconds.formatted(2)) s"
        )
    }
}
