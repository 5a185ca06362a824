/// Something that can be ordered in a `BinaryHeap`: `precedes` says which of two leaves first.
protocol HeapElement {
    static func precedes(_ a: Self, _ b: Self) -> Bool
}

/// A minimal array-backed binary heap (the std::priority_queue the llama.cpp tokenizers use).
/// `removeAll(keepingCapacity:)` lets one heap serve many words without reallocating.
struct BinaryHeap<Element: HeapElement> {
    private(set) var items: [Element] = []

    var isEmpty: Bool { items.isEmpty }

    mutating func removeAll() { items.removeAll(keepingCapacity: true) }

    mutating func push(_ element: Element) {
        items.append(element)
        var child = items.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard Element.precedes(items[child], items[parent]) else { break }
            items.swapAt(child, parent)
            child = parent
        }
    }

    mutating func pop() -> Element? {
        guard !items.isEmpty else { return nil }
        let top = items[0]
        let last = items.removeLast()
        if !items.isEmpty {
            items[0] = last
            var parent = 0
            let n = items.count
            while true {
                let left = 2 * parent + 1
                if left >= n { break }
                var best = left
                let right = left + 1
                if right < n && Element.precedes(items[right], items[left]) { best = right }
                guard Element.precedes(items[best], items[parent]) else { break }
                items.swapAt(best, parent)
                parent = best
            }
        }
        return top
    }
}
