//! desdis-data (being built).
