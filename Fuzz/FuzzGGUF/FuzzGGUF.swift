// libFuzzer target: any bytes as a GGUF file, then its model config and tokenizer, as
// `nibble info` and a model load read them. Must never crash, hang or allocate what a
// header claims; errors are fine. Built by `make fuzz` (Makefile, -sanitize=fuzzer,address).
import Foundation
import Inference
import ModelFiles
import Tokenizers

nonisolated(unsafe) let scratch = "/dev/shm/nibble-fuzz-gguf-\(getpid()).gguf"

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let fd = open(scratch, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    guard fd >= 0 else { return 0 }
    _ = write(fd, data, size)
    close(fd)
    guard let file = try? GGUFFile(path: scratch) else { return 0 }
    _ = try? ModelConfig(gguf: file)
    if let tokenizer = try? Tokenizer(gguf: file) {
        let ids = tokenizer.encode("Hello, world! 123 <|im_end|> héllo")
        _ = tokenizer.decode(ids)
    }
    for tensor in file.tensors.prefix(4) { _ = file.data(of: tensor).first }
    return 0
}
