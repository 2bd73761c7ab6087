//! desdis-eval (being built).
