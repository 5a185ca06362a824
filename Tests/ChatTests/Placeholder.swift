import Testing
@testable import Chat
