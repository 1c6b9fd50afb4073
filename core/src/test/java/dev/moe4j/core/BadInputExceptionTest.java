package dev.moe4j.core;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;

class BadInputExceptionTest {
    @Test
    void aQuotedValueStaysOnOneLineAndIsCutShort() {
        assertEquals("'model-00001.safetensors'", BadInputException.quote("model-00001.safetensors"));
        assertEquals("'a\\nb\\r\\tc\\u0000\\u001b[31m\\u2028'", BadInputException.quote("a\nb\r\tc\u0000\u001b[31m\u2028"));
        String quoted = BadInputException.quote("x".repeat(1000));
        assertEquals("'" + "x".repeat(BadInputException.QUOTED_CHARS) + "'...", quoted);
    }
}
