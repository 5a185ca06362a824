// Conversations, chat sessions and their files land here.
