package dev.moe4j.io.chat;

import com.code_intelligence.jazzer.junit.DictionaryEntries;
import com.code_intelligence.jazzer.junit.FuzzTest;
import dev.moe4j.core.testing.CleanRefusal;
import dev.moe4j.core.testing.FuzzFiles;

import java.util.List;

/**
 * Fuzzes {@code tokenizer_config.json} and the chat template in it: a template that loads must render a
 * conversation (with and without the generation prompt), or the load or the rendering must be refused in one line.
 * Seeds: {@code ChatTemplateFuzzTestInputs/} (the templates of every supported family).
 */
class ChatTemplateFuzzTest {
    private static final FuzzFiles FILES = new FuzzFiles("chat");
    private static final List<ChatTemplate.Message> CONVERSATION = List.of(
            new ChatTemplate.Message("system", "Be brief."), new ChatTemplate.Message("user", "Hi"),
            new ChatTemplate.Message("assistant", "Hello."), new ChatTemplate.Message("user", "Bye"));

    @FuzzTest
    @DictionaryEntries({"\"chat_template\"", "\"bos_token\"", "\"eos_token\"", "{%", "%}", "{{", "}}", "{#", "#}",
            " for message in messages ", " endfor ", " if ", " endif ", " else ", "message['role']",
            "message['content']", "add_generation_prompt", "raise_exception(", "|tojson", "loop.index0", " set ",
            " macro ", " endmacro ", "namespace(", "strftime_now(", "tools", ".split(", ".strip()"})
    void anyTokenizerConfigRendersAConversationOrIsRefusedInOneLine(byte[] config) throws Exception {
        var path = FILES.write("tokenizer_config.json", config);
        CleanRefusal.check(() -> {
            ChatTemplate template = ChatTemplate.load(path);
            template.render(CONVERSATION, true);
            template.render(CONVERSATION.subList(1, 2), false);
        });
    }
}
