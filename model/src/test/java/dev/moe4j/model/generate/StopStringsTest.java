package dev.moe4j.model.generate;

import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

class StopStringsTest {
    @Test
    void textThatCannotStartAStopStringIsReleasedAtOnce() {
        var s = new StopStrings(List.of("</s>"));
        assertEquals("hello", s.accept("hello"));
        assertFalse(s.stopped());
    }

    @Test
    void aStopStringSplitOverPiecesIsNeverReleased() {
        var s = new StopStrings(List.of("</s>"));
        assertEquals("a", s.accept("a<"));
        assertEquals("", s.accept("/"));
        assertEquals("", s.accept("s>tail"));
        assertTrue(s.stopped());
        assertEquals("", s.flush());
        assertEquals("", s.accept("more"), "nothing after a stop string");
    }

    @Test
    void heldBackTextIsReleasedWhenItStopsLookingLikeAStopString() {
        var s = new StopStrings(List.of("</s>"));
        assertEquals("x", s.accept("x</"));
        assertEquals("</a", s.accept("a"));
        assertFalse(s.stopped());
    }

    @Test
    void theEarliestOfSeveralStopStringsWins() {
        var s = new StopStrings(List.of("world", "lo"));
        assertEquals("hel", s.accept("hello world"));
    }

    @Test
    void theEndOfGenerationReleasesWhatWasHeld() {
        var s = new StopStrings(List.of("STOP"));
        assertEquals("go ", s.accept("go ST"));
        assertEquals("ST", s.flush());
    }

    @Test
    void withoutStopStringsEverythingPassesThrough() {
        var s = new StopStrings(List.of());
        assertEquals("<anything>", s.accept("<anything>"));
        assertEquals("", s.flush());
    }
}
