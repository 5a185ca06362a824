/// A hash map from byte strings to `Int32` ids, looked up by byte slices without allocating.
///
/// Token texts are compared as raw bytes, never as Swift `String`s: `String` equality and hashing
/// use Unicode canonical equivalence, so "é" (U+00E9) and "e\u{301}" would collide although they
/// are different tokens. llama.cpp's `token_to_id` (a `std::unordered_map<std::string, ...>`)
/// compares bytes, and so does this table.
///
/// All keys live in one contiguous buffer; the index is open addressing with linear probing.
struct ByteStringTable {
    /// One slot of the open-addressing index; everything a probe needs sits together, so a
    /// lookup touches one slot and, only when the hash matches, the key bytes.
    private struct Slot {
        var start: Int32
        var length: Int32   // -1: empty
        var value: Int32
        var hash: UInt32
    }

    private var storage: [UInt8] = []
    private var slots: [Slot]
    private var mask: Int
    private(set) var count = 0

    private static let emptySlot = Slot(start: 0, length: -1, value: 0, hash: 0)

    init(capacity: Int = 16) {
        var size = 16
        while size < capacity * 2 { size <<= 1 }
        slots = [Slot](repeating: Self.emptySlot, count: size)
        mask = size - 1
    }

    /// FNV-1a over the bytes, with a final avalanche so linear probing spreads well.
    @inline(__always) private static func hash(_ bytes: UnsafeBufferPointer<UInt8>) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in bytes {
            h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01B3
        }
        h ^= h >> 29
        h = h &* 0xBF58_476D_1CE4_E5B9
        h ^= h >> 32
        return h
    }

    /// Index of the slot holding `bytes`, or of the empty slot where it would go.
    @inline(__always) private func find(_ bytes: UnsafeBufferPointer<UInt8>, _ h: UInt64) -> Int {
        let tag = UInt32(truncatingIfNeeded: h >> 32)
        var s = Int(truncatingIfNeeded: h) & mask
        return storage.withUnsafeBufferPointer { store in
            slots.withUnsafeBufferPointer { table in
                while true {
                    let slot = table[s]
                    if slot.length < 0 { return s }
                    if slot.hash == tag && Int(slot.length) == bytes.count {
                        let start = Int(slot.start)
                        var equal = true
                        var i = 0
                        while i < bytes.count {
                            if store[start + i] != bytes[i] { equal = false; break }
                            i += 1
                        }
                        if equal { return s }
                    }
                    s = (s + 1) & mask
                }
            }
        }
    }

    /// The id stored for `bytes`, or nil.
    @inline(__always) func lookup(_ bytes: UnsafeBufferPointer<UInt8>) -> Int32? {
        let slot = slots[find(bytes, Self.hash(bytes))]
        return slot.length < 0 ? nil : slot.value
    }

    func lookup(_ bytes: [UInt8]) -> Int32? {
        bytes.withUnsafeBufferPointer { lookup($0) }
    }

    func lookup(_ bytes: ArraySlice<UInt8>) -> Int32? {
        bytes.withUnsafeBufferPointer { lookup($0) }
    }

    /// Stores `value` for `bytes`, replacing any earlier value (like `map[key] = value`).
    mutating func set(_ bytes: UnsafeBufferPointer<UInt8>, _ value: Int32) {
        if (count + 1) * 2 > slots.count { grow() }
        let h = Self.hash(bytes)
        let s = find(bytes, h)
        if slots[s].length >= 0 {
            slots[s].value = value
            return
        }
        slots[s] = Slot(start: Int32(storage.count), length: Int32(bytes.count), value: value,
                        hash: UInt32(truncatingIfNeeded: h >> 32))
        storage.append(contentsOf: bytes)
        count += 1
    }

    mutating func set(_ bytes: [UInt8], _ value: Int32) {
        bytes.withUnsafeBufferPointer { set($0, value) }
    }

    private mutating func grow() {
        let old = slots
        let size = slots.count * 2
        slots = [Slot](repeating: Self.emptySlot, count: size)
        mask = size - 1
        storage.withUnsafeBufferPointer { store in
            for slot in old where slot.length >= 0 {
                let start = Int(slot.start)
                let h = Self.hash(UnsafeBufferPointer(rebasing: store[start..<(start + Int(slot.length))]))
                var s = Int(truncatingIfNeeded: h) & mask
                while slots[s].length >= 0 { s = (s + 1) & mask }
                slots[s] = slot
            }
        }
    }
}

/// A hash map from 64-bit keys to 64-bit values (open addressing, linear probing), used for the
/// BPE merge table: cheaper than `Dictionary`, whose seeded SipHash dominates a 500k-merge load.
/// `UInt64.max` is reserved as the empty marker (keys are pairs of non-negative `Int32` ids).
struct PairTable {
    private var keys: [UInt64]
    private var values: [UInt64]
    private var mask: Int
    private(set) var count = 0

    private static let empty = UInt64.max

    init(capacity: Int) {
        var size = 16
        while size < capacity * 2 { size <<= 1 }
        keys = [UInt64](repeating: Self.empty, count: size)
        values = [UInt64](repeating: 0, count: size)
        mask = size - 1
    }

    @inline(__always) private static func slot(_ key: UInt64, _ mask: Int) -> Int {
        var h = key &* 0x9E37_79B9_7F4A_7C15
        h ^= h >> 32
        return Int(truncatingIfNeeded: h) & mask
    }

    @inline(__always) func value(for key: UInt64) -> UInt64? {
        var s = Self.slot(key, mask)
        while true {
            let k = keys[s]
            if k == key { return values[s] }
            if k == Self.empty { return nil }
            s = (s + 1) & mask
        }
    }

    /// Stores `value` unless `key` is already present (`std::unordered_map::emplace`).
    mutating func insertIfAbsent(_ key: UInt64, _ value: UInt64) {
        precondition(key != Self.empty)
        if (count + 1) * 2 > keys.count { grow() }
        var s = Self.slot(key, mask)
        while true {
            let k = keys[s]
            if k == key { return }
            if k == Self.empty { break }
            s = (s + 1) & mask
        }
        keys[s] = key
        values[s] = value
        count += 1
    }

    private mutating func grow() {
        let oldKeys = keys, oldValues = values
        let size = keys.count * 2
        keys = [UInt64](repeating: Self.empty, count: size)
        values = [UInt64](repeating: 0, count: size)
        mask = size - 1
        for (i, k) in oldKeys.enumerated() where k != Self.empty {
            var s = Self.slot(k, mask)
            while keys[s] != Self.empty { s = (s + 1) & mask }
            keys[s] = k
            values[s] = oldValues[i]
        }
    }
}
