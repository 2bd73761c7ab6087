//! desdis-train (being built).
