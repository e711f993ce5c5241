//! `mock-llm [ADDR]`: serves the mock model APIs, Gemini and OpenAI-compatible (default
//! 127.0.0.1:8089), until killed.

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8089".into())
        .parse()
        .map_err(|e| std::io::Error::other(format!("bad address: {e}")))?;
    mock_llm::serve(addr).await
}
