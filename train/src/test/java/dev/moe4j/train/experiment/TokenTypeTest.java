package dev.moe4j.train.experiment;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;

class TokenTypeTest {
    @Test
    void tokensAreClassedByTheirText() {
        assertEquals(TokenType.WHITESPACE, TokenType.of("    ", false));
        assertEquals(TokenType.WHITESPACE, TokenType.of("\n\n", false));
        assertEquals(TokenType.PUNCTUATION, TokenType.of(" (", false));
        assertEquals(TokenType.PUNCTUATION, TokenType.of(");", false));
        assertEquals(TokenType.DIGITS, TokenType.of(" 1984", false));
        assertEquals(TokenType.CJK, TokenType.of("子曰", false));
        assertEquals(TokenType.CJK, TokenType.of("，", false));
        assertEquals(TokenType.IDENTIFIER, TokenType.of("_size", false));
        assertEquals(TokenType.IDENTIFIER, TokenType.of("toString", false));
        assertEquals(TokenType.IDENTIFIER, TokenType.of("x2", false));
        assertEquals(TokenType.CAPITALISED, TokenType.of(" KING", false));
        assertEquals(TokenType.CAPITALISED, TokenType.of(" The", false));
        assertEquals(TokenType.WORD, TokenType.of(" the", false));
        assertEquals(TokenType.WORD, TokenType.of("ing", false));
        assertEquals(TokenType.OTHER, TokenType.of("\uFFFD", false));
        assertEquals(TokenType.OTHER, TokenType.of("x.y", false));
        assertEquals(TokenType.SPECIAL, TokenType.of("<|endoftext|>", true));
    }
}
