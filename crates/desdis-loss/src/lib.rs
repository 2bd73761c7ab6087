//! desdis-loss (being built).
