import ArgumentParser
import LookM

extension Variant: ExpressibleByArgument {}
extension GQAAggregation: ExpressibleByArgument {}

struct CompressCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compress",
        abstract: "Compress a dump into a cache (LOOK-M by default), layer by layer.",
        discussion: """
            Methods (--method): lookm (text-prior + pivot merge, the default), lookm-avg, \
            lookm-weighted, text-prior, h2o, snapkv, streaming, random, knorm, full, mixkv. --selector \
            (text-prior, h2o, snapkv, streaming, random, knorm, full, mixkv) and --merge (none, avg, pivot, \
            weighted) compose freely and replace that half of --method. Budget: --hh-ratio and \
            --recent-ratio (default 0.1 each), or --budget B (keep floor(L*B) tokens), or --keep N; \
            --allocation pyramid spreads --budget or --keep over the layers and --head-allocation adakv \
            shares each layer's among its kv heads (docs/method.md sections 8 and 9). --quant int8|int4|\
            int2|fp8 stores the kept slots as packed codes with per-group scales (section 12). \
            --variant reference reproduces the authors' implementation bit for bit (official modes \
            only). A summary line goes to stderr; --json prints the per-layer facts on stdout.

            Batch mode (--out-dir DIR, docs/batch.md): every DUMP and every --manifest line becomes \
            DIR/<stem>.lookm.h5; --shard I/N takes every N-th; outputs already made with the same \
            settings from the unchanged dump are skipped; one JSON line per dump goes to \
            DIR/results/ (--json also prints them on stdout); `lookm collect DIR` gathers them.
            """)

    @Argument(
        help: ArgumentHelp("The dump (.h5), or - to read it from stdin; several with --out-dir.", valueName: "dump"))
    var dumps: [String] = []

    @OptionGroup var batch: BatchFlags

    @Option(
        name: [.short, .customLong("output")],
        help: ArgumentHelp("The cache to write (default: DUMP with .lookm.h5), or - for stdout.", valueName: "file"))
    var output: String?

    @Option(help: "A method of docs/method.md section 5 (default: lookm).") var method: String?
    @Option(help: "Which positions to keep: text-prior, h2o, snapkv, streaming, random, knorm, full, mixkv.")
    var selector: String?
    @Option(help: "What happens to evicted pairs: none, avg, pivot, weighted.") var merge: String?
    @Option(
        name: .customLong("hh-ratio"), parsing: .unconditional,
        help: "Heavy hitters as a share of the prompt (default 0.1).") var hhRatio: Double?
    @Option(
        name: .customLong("recent-ratio"), parsing: .unconditional,
        help: "Recent tokens as a share of the prompt (default 0.1).") var recentRatio: Double?
    @Option(
        parsing: .unconditional,
        help: "Keep this share of the prompt, split 1:1 between heavy hitters and recent tokens.") var budget: Double?
    @Option(parsing: .unconditional, help: "Keep this many tokens, split 1:1.") var keep: Int?
    @Option(
        parsing: .unconditional,
        help: "With --budget or --keep: the recent window is this many tokens (not half the budget).")
    var recent: Int?
    @Option(
        name: .customLong("target-bytes"),
        help: "Keep the most tokens whose cache K/V fit this size: 400MiB, 1.5GB, 25% (of the dump's K/V).")
    var targetBytes: String?
    @Option(help: "paper (the clean definitions) or reference (the authors' code, bit for bit).") var variant: Variant =
        .paper
    @Option(name: .customLong("gqa-agg"), help: "How a kv head aggregates its query heads' scores (default: mean).")
    var gqaAgg: GQAAggregation?
    @Option(parsing: .unconditional, help: "snapkv: observation window in queries (default 32).") var window: Int?
    @Option(parsing: .unconditional, help: "snapkv: pooling kernel width, odd (default 7).") var kernel: Int?
    @Option(parsing: .unconditional, help: "streaming: attention sinks kept at the start (default 4).") var sinks: Int?
    @Option(parsing: .unconditional, help: "random: the seed (default 0).") var seed: UInt64?
    @Option(help: "How the budget is spread over the layers: uniform (default) or pyramid (PyramidKV).")
    var allocation: String?
    @OptionGroup var pyramid: PyramidFlags
    @Option(
        name: .customLong("head-allocation"),
        help: "How a layer's budget is shared among its kv heads: uniform (default) or adakv (Ada-KV).")
    var headAllocation: String?
    @Option(
        name: .customLong("adakv-floor"), parsing: .unconditional,
        help: "adakv: the share of its budget every kv head keeps by its own ranking (default 0.2).")
    var adakvFloor: Double?
    @Option(
        help:
            "Store keys and values quantised: none (default), int8, int4, int2 (KIVI) or fp8 (E4M3); docs/method.md section 12."
    )
    var quant: String?
    @OptionGroup var quantFlags: QuantFlags
    @Option(help: "Codec of the cache's tensors (default: zstd).") var codec: CodecName = .zstd
    @Option(parsing: .unconditional, help: "Codec level (zstd default 3, deflate default 4).") var level: Int?
    @Option(
        parsing: .unconditional,
        help: "Worker threads (default: SLURM_CPUS_PER_TASK, else every core); the output is the same for any value.")
    var threads: Int?
    @Flag(help: "Replace an existing output file (batch mode: also outputs made with other settings).") var force =
        false
    @Flag(help: "Print the per-layer summary as one JSON document on stdout (keys in docs/compress.md).") var json =
        false

    func validate() throws {
        try batch.validate(inputs: dumps, extra: output != nil ? "-o" : nil)
        guard !batch.isBatch else { return }
        guard dumps.count == 1 else {
            throw ValidationError(
                dumps.isEmpty
                    ? "give a dump to compress"
                    : "\(dumps.count) dumps given: compress several with --out-dir DIR (batch mode)")
        }
        let dump = dumps[0]
        if json && output == "-" {
            throw ValidationError(
                "--json prints to stdout, which -o - already uses for the cache; write the cache to a file, or drop --json"
            )
        }
        if dump == "-" && output == nil {
            throw ValidationError("reading the dump from stdin needs -o FILE (or -o - for stdout)")
        }
    }

    func run() throws {
        let method = try Method.resolve(
            MethodOptions(
                method: self.method, selector: selector, merge: merge, variant: variant,
                budget: BudgetOptions(
                    hhRatio: hhRatio, recentRatio: recentRatio, budget: budget, keep: keep, recent: recent,
                    targetBytes: try targetBytes.map(ByteTarget.parse)),
                selectorFlags: SelectorFlags(gqaAgg: gqaAgg, window: window, kernel: kernel, sinks: sinks, seed: seed),
                allocation: allocation,
                allocationFlags: pyramid.allocationFlags,
                headAllocation: headAllocation, headAllocationFlags: HeadAllocationFlags(adakvFloor: adakvFloor),
                quant: QuantOptions(name: quant, group: quantFlags.group, residual: quantFlags.residual)))
        let codec = try Codec.parse(codec.rawValue, level: level)
        let threads = try Parallel.workers(threads, flag: "--threads")
        if batch.isBatch {
            try batch.run(
                .compress(method: method, codec: codec, threads: threads), dumps: dumps, force: force, json: json)
            return
        }
        let dump = dumps[0]
        let input = try InputFile(dump)
        try StandardOutput.requireNotInput()  // -o - and --json print there
        let destination: CacheDestination =
            output == "-" ? .stdout : .file(output ?? Compressor.defaultOutput(for: dump))
        let progress = Progress("compress: layer")
        let summary = try Compressor.run(
            input: input, destination: destination, force: force, method: method, codec: codec,
            threads: threads
        ) { progress.update($0, of: $1) }
        progress.finish()
        printError(summary.line)
        if json { try StandardOutput.print(try summary.json()) }
    }
}
