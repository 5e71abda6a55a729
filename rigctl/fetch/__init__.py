"""Controller-side fetching: resumable verified downloads, the llama.cpp source."""
