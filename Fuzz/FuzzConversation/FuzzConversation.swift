// libFuzzer target: any bytes as a conversation file (`/load`, `--load`, `/replay FILE`).
// Must never crash; a file that loads must save and load again to the same conversation.
import Chat
import Foundation

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    guard let conversation = try? Conversation.decode(Data(bytes: data, count: size), path: "fuzz.json") else { return 0 }
    _ = conversation.markdown()
    do {
        let bytes = try conversation.encoded()
        let again = try Conversation.decode(bytes, path: "again.json")
        let second = try again.encoded()
        if second != bytes {
            fail("saving a loaded conversation twice gives other bytes:\n" + String(decoding: bytes, as: UTF8.self)
                 + "\n---\n" + String(decoding: second, as: UTF8.self))
        }
    } catch {
        fail("a conversation that loads must save and load again: \(error)")
    }
    return 0
}

/// Reports a broken property and crashes (-O drops precondition messages).
func fail(_ message: String) -> Never {
    fputs(message + "\n", stderr)
    abort()
}
