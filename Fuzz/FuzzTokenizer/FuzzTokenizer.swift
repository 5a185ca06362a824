// libFuzzer target: any bytes as text for SmolLM2's byte-level BPE tokenizer (the default
// model, $NIBBLE_MODEL), with and without control tokens, and any ids to decode and to
// stream. Valid UTF-8 without control-token text must round-trip exactly.
import Foundation
import ModelFiles
import Tokenizers

let tokenizer: Tokenizer = {
    let env = ProcessInfo.processInfo.environment
    let path = env["NIBBLE_MODEL"] ?? ((env["HOME"] ?? NSHomeDirectory()) + "/.cache/nibble/models/SmolLM2-135M-Instruct.Q4_1.gguf")
    do {
        return try Tokenizer(gguf: try GGUFFile(path: path))
    } catch {
        fatalError("FuzzTokenizer needs the default model (NIBBLE_MODEL): \(error)")
    }
}()

/// Byte values the vocabulary has a token for (SmolLM2 lacks 21: they cannot round-trip).
let coverable: [Bool] = (0..<256).map { b in
    tokenizer.encode(bytes: [UInt8(b)]).flatMap { tokenizer.tokenBytes($0) } == [UInt8(b)]
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = UnsafeBufferPointer(start: data, count: size)
    let text = String(decoding: bytes, as: UTF8.self)
    let ids = tokenizer.encode(text)
    let decoded = tokenizer.decode(ids)
    if String(validating: bytes, as: UTF8.self) != nil, bytes.allSatisfy({ coverable[Int($0)] }) {
        precondition(decoded == text, "decode(encode(s)) != s for \(text.debugDescription)")
    }
    _ = tokenizer.encode(text, parseSpecial: true)
    // The same bytes as ids: any id, in or out of the vocabulary, must decode or be refused.
    var streaming = StreamingDecoder(tokenizer: tokenizer)
    var streamed = ""
    var i = 0
    while i + 1 < size {
        let id = Int(data[i]) << 8 | Int(data[i + 1])
        if id < tokenizer.vocabularySize { streamed += streaming.append(id) }
        i += 2
    }
    streamed += streaming.finish()
    return 0
}
