import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif


/// What one template may cost. A chat template is code shipped inside the model file
/// and rendered on every turn, so a hostile or broken one must fail with a
/// `TemplateError` (kind `.limit`) instead of crashing the process, exhausting memory
/// or running for minutes. Each message names the field that was exceeded.
///
/// The defaults are far above what real chat templates need. Measured on the 76
/// templates of the fixture (`RealTemplateBudgetTests`) with a 1000-message
/// conversation and with the fixture's tool-calling conversations: at most 27 levels of
/// nesting (blocks plus expression depth, DeepSeek V3.2), 39 levels of render recursion
/// and 9 nested macro calls (Kimi K3, whose macros recurse over JSON schemas), and about
/// 4.2 million steps (gemma 4, whose template scans all earlier messages for every
/// message: quadratic, so about 3,500 messages reach the step limit, after ~4 s in a
/// release build). Other templates use well under 0.5 million steps for 1000 messages.
///
/// Parsing and rendering run on a worker thread with a 16 MiB stack (`WorkerThread`), so
/// the nesting limits are safe whatever thread calls: a debug build spends up to ~12 KiB
/// of stack per parser level and ~3 KiB per render level, a release build ~6 KiB and
/// ~0.4 KiB; 100 parser levels and 1000 render levels fit with room to spare. The parser
/// and the interpreter also stop 96 KiB before the end of whatever stack they are on.
/// Tests pass lower values.
public struct TemplateLimits: Sendable, Equatable {
    /// Parsing: blocks (`{% if %}`, `{% for %}`, …) inside one another plus the
    /// nesting of an expression (parentheses, brackets, unary operators, and the depth
    /// of chains of `.attr`, `[key]`, calls, filters and binary operators), counted
    /// together. The parser, every walk over the syntax tree and the interpreter recurse
    /// once per level.
    public var maxNesting = 100

    /// Rendering: macro calls, `caller()` and `{% call %}` blocks in progress at once.
    /// A template that calls itself without end stops here.
    public var maxCallDepth = 200

    /// Rendering: statements and expressions being evaluated inside one another, across
    /// macro calls (each level is one recursion of the interpreter on the stack).
    public var maxRenderDepth = 1000

    /// How deeply lists, tuples and dicts may contain one another (freeing, comparing and
    /// printing a value recurse once per level). JSON context values nest at most 512.
    public var maxValueDepth = 1000

    /// The longest string any operation may make, in UTF-8 bytes (16 MiB).
    public var maxStringBytes = 16 << 20

    /// The longest rendered output, in UTF-8 bytes (16 MiB); also what `{% set %}` and
    /// macro bodies may render.
    public var maxOutputBytes = 16 << 20

    /// The most items any list, tuple, dict or iterable may hold (4 Mi items, ~100 MB).
    public var maxItems = 4 << 20

    /// How much work one render may do. A step is one statement executed, one expression
    /// evaluated or one call; a loop iteration counts 4; operations also count 1 step per
    /// KiB of string or 64 items they make or scan. 50 million steps take 3 to 6 seconds
    /// in a release build.
    public var maxSteps = 50_000_000

    /// How many steps pass between two calls of the render's `shouldStop`
    /// (10,000 steps: about a millisecond).
    public var stepsBetweenCancellationChecks = 10_000

    public init() {}

    public static let `default` = TemplateLimits()

    /// The limits in force for the render running on this thread (the interpreter sets
    /// them; value operations that allocate read them).
    @TaskLocal static var current = TemplateLimits()
}

/// Limit checks for value operations that are about to allocate: they throw
/// `PyError.limit` before any memory is asked for.
enum Limit {
    static func stringTooLong(_ bytes: Int?) -> PyError {
        let max = TemplateLimits.current.maxStringBytes
        if let bytes { return .limit("the string would be \(bytes) bytes long, over the limit of \(max) bytes (TemplateLimits.maxStringBytes)") }
        return .limit("the string would be longer than the limit of \(max) bytes (TemplateLimits.maxStringBytes)")
    }

    static func tooManyItems(_ count: Int?) -> PyError {
        let max = TemplateLimits.current.maxItems
        if let count { return .limit("the sequence would have \(count) items, over the limit of \(max) (TemplateLimits.maxItems)") }
        return .limit("the sequence would have more items than the limit of \(max) (TemplateLimits.maxItems)")
    }

    /// A string of `bytes` UTF-8 bytes may be made.
    static func string(_ bytes: Int) throws {
        if bytes > TemplateLimits.current.maxStringBytes { throw stringTooLong(bytes) }
    }

    /// A string of `count` copies of `unit` bytes each (nil: the product overflows).
    static func repeated(_ unit: Int, _ count: Int, plus extra: Int = 0) throws {
        guard count > 0, unit > 0 else { return try string(extra) }
        let (product, o1) = unit.multipliedReportingOverflow(by: count)
        let (total, o2) = product.addingReportingOverflow(extra)
        if o1 || o2 { throw stringTooLong(nil) }
        try string(total)
    }

    /// A padded field `width` characters wide around `text` of `filler`-byte padding.
    static func padded(_ text: String, toWidth width: Int, fillBytes: Int = 1) throws {
        let n = PyString.length(text)
        guard width > n else { return }
        try repeated(fillBytes, width - n, plus: text.utf8.count)
    }

    /// `separator.join(parts)`, refused before joining past `maxStringBytes`.
    static func joined(_ parts: [String], separator: String) throws -> String {
        var total = separator.utf8.count * max(0, parts.count - 1)
        for part in parts {
            total += part.utf8.count
            if total > TemplateLimits.current.maxStringBytes { throw stringTooLong(total) }
        }
        try string(total)
        return parts.joined(separator: separator)
    }

    /// A list, tuple or dict of `count` items may be made.
    static func items(_ count: Int) throws {
        if count > TemplateLimits.current.maxItems { throw tooManyItems(count) }
    }

    /// A list of `count` copies of `unit` items.
    static func repeatedItems(_ unit: Int, _ count: Int) throws {
        guard count > 0, unit > 0 else { return }
        let (total, o) = unit.multipliedReportingOverflow(by: count)
        if o { throw tooManyItems(nil) }
        try items(total)
    }

    /// The message of checked integer arithmetic that does not fit in 64 bits (jinja2
    /// would use Python's unbounded ints).
    static let integerTooLarge = "integer too large: the result does not fit in 64 bits"
}

/// Checked arithmetic on template integers.
extension Int {
    func checkedAdding(_ other: Int) throws -> Int {
        let (r, o) = addingReportingOverflow(other)
        if o { throw PyError.overflow(Limit.integerTooLarge) }
        return r
    }

    func checkedSubtracting(_ other: Int) throws -> Int {
        let (r, o) = subtractingReportingOverflow(other)
        if o { throw PyError.overflow(Limit.integerTooLarge) }
        return r
    }

    func checkedMultiplied(by other: Int) throws -> Int {
        let (r, o) = multipliedReportingOverflow(by: other)
        if o { throw PyError.overflow(Limit.integerTooLarge) }
        return r
    }

    func checkedNegated() throws -> Int {
        if self == .min { throw PyError.overflow(Limit.integerTooLarge) }
        return -self
    }

    /// `Int(d)` for a float known to be integral-valued or to be truncated.
    static func checked(_ d: Double) throws -> Int {
        guard d.isFinite else {
            throw PyError.overflow(d.isNaN ? "cannot convert float NaN to integer" : "cannot convert float infinity to integer")
        }
        guard let i = Int(exactly: d.rounded(.towardZero)) else { throw PyError.overflow(Limit.integerTooLarge) }
        return i
    }
}

/// The stack of the calling thread.
enum StackBounds {
    #if os(Linux)
    private static let getAttr: UnsafeMutableRawPointer? = {
        guard let handle = dlopen(nil, RTLD_NOW) else { return nil }
        return dlsym(handle, "pthread_getattr_np")
    }()
    #endif

    /// The lowest address of this thread's stack plus `reserve` bytes (the stack grows
    /// down), or 0 when the platform does not tell.
    static func floor(reserving reserve: UInt) -> UInt {
        #if canImport(Darwin)
        let thread = pthread_self()
        let top = UInt(bitPattern: pthread_get_stackaddr_np(thread))
        let size = UInt(pthread_get_stacksize_np(thread))
        return top - size + reserve
        #elseif os(Linux)
        // glibc's pthread_getattr_np is not in Swift's Glibc module (_GNU_SOURCE).
        typealias GetAttr = @convention(c) (pthread_t, UnsafeMutablePointer<pthread_attr_t>) -> Int32
        guard let symbol = getAttr else { return 0 }
        let getattr = unsafeBitCast(symbol, to: GetAttr.self)
        var attributes = pthread_attr_t()
        guard getattr(pthread_self(), &attributes) == 0 else { return 0 }
        defer { pthread_attr_destroy(&attributes) }
        var address: UnsafeMutableRawPointer?
        var size = 0
        guard pthread_attr_getstack(&attributes, &address, &size) == 0, let address else { return 0 }
        return UInt(bitPattern: address) + reserve
        #else
        return 0
        #endif
    }
}

/// Runs work on a thread of its own with a stack of known size, so that the limits on
/// nesting hold whatever thread the caller is on: a 512 KiB secondary thread can parse
/// and render the deepest template the limits allow (in a debug build a level of
/// parentheses costs the parser about 24 KiB of stack, a level of evaluation about
/// 3 KiB). The caller waits; if no thread can be made the work runs on the caller's
/// thread, where the stack guards of the parser and the interpreter still stop it
/// before the stack ends.
enum WorkerThread {
    /// The stack of the worker: 16 MiB of address space (pages are used as touched).
    static let stackSize = 16 << 20

    static func run<T>(_ work: () throws -> T) throws -> T {
        try withoutActuallyEscaping(work) { work in
            let job = Job(work)
            guard job.runOnThread(stackSize: stackSize) else { return try work() }
            return try job.result!.get() as! T
        }
    }

    private final class Job {
        let work: () throws -> Any
        var result: Result<Any, Error>?

        init<T>(_ work: @escaping () throws -> T) { self.work = { try work() } }

        func execute() { result = Result { try work() } }

        /// Runs `execute` on a new thread and waits for it; false if no thread was made.
        func runOnThread(stackSize: Int) -> Bool {
            #if os(Linux)
            var attributes = pthread_attr_t()
            guard pthread_attr_init(&attributes) == 0 else { return false }
            defer { pthread_attr_destroy(&attributes) }
            guard pthread_attr_setstacksize(&attributes, stackSize) == 0 else { return false }
            var thread = pthread_t()
            let context = Unmanaged.passRetained(self)
            let started = pthread_create(&thread, &attributes, { context in
                let job = Unmanaged<Job>.fromOpaque(context!).takeRetainedValue()
                job.execute()
                return nil
            }, context.toOpaque())
            guard started == 0 else {
                context.release()
                return false
            }
            pthread_join(thread, nil)
            return true
            #else
            let done = DispatchSemaphore(value: 0)
            let thread = Thread { [self] in
                execute()
                done.signal()
            }
            thread.stackSize = stackSize
            thread.start()
            done.wait()
            return true
            #endif
        }
    }
}
