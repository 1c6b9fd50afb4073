package dev.moe4j.server;

import dev.moe4j.core.BadInputException;
import dev.moe4j.core.backend.Backend;
import dev.moe4j.io.chat.ChatTemplate;
import dev.moe4j.model.ModelFolder;
import dev.moe4j.moe.router.RoutingPolicy;
import dev.moe4j.model.config.ModelConfig;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Function;

/**
 * The one model a server serves: its opened folder, the name clients ask for it by, and its chat template. A model
 * without a chat template still serves {@code /v1/completions}; chat requests are then refused with the reason.
 *
 * @param chatTemplate   null when the model has none
 * @param noChatTemplate why there is no chat template (null when there is one)
 * @param routing        how a request's MoE layers route unless it asks otherwise (the moe4j.routing extension)
 */
public record ServedModel(ModelFolder folder, String name, ChatTemplate chatTemplate, String noChatTemplate,
                          RoutingPolicy routing) implements AutoCloseable {
    public ServedModel {
        java.util.Objects.requireNonNull(routing, "routing");
    }

    /** Routing as trained unless a request asks otherwise. */
    public ServedModel(ModelFolder folder, String name, ChatTemplate chatTemplate, String noChatTemplate) {
        this(folder, name, chatTemplate, noChatTemplate, RoutingPolicy.TRAINED);
    }

    /**
     * This model serving requests with {@code policy} unless they ask for another (serve's routing flags), checked
     * against the model.
     */
    public ServedModel withRouting(RoutingPolicy policy) {
        folder.model().checkRouting(policy, RoutingPolicy.Naming.flags());
        return new ServedModel(folder, name, chatTemplate, noChatTemplate, policy);
    }

    /**
     * Opens a model folder or GGUF file to serve. {@code templateFile} (may be null) replaces the chat template of the model's
     * tokenizer_config.json; a template that cannot be read or does not parse is an error, a model without a template
     * is not.
     * {@code name} (may be null) is the model id of the API, by default the folder's name (a GGUF file's without
     * .gguf). The weights go to the
     * backend {@code backendFor} picks for the model's config.
     */
    public static ServedModel open(Path dir, Path templateFile, String name, ModelFolder.Opener opener,
                                   Function<ModelConfig, Backend> backendFor) {
        ChatTemplate template = null;
        String noTemplate = null;
        if (templateFile != null) {
            template = ModelFolder.chatTemplate(dir, templateFile);
        } else {
            try {
                template = ModelFolder.chatTemplate(dir, null);
            } catch (ChatTemplate.Missing e) {
                noTemplate = e.getMessage();
            }
        }
        if (name != null && name.isBlank()) {
            throw new BadInputException("--served-model-name: the name must not be blank");
        }
        ModelFolder folder = ModelFolder.open(dir, opener, backendFor);
        String file = dir.toAbsolutePath().normalize().getFileName().toString();
        String id = name != null ? name : file.toLowerCase(java.util.Locale.ROOT).endsWith(".gguf")
                ? file.substring(0, file.length() - ".gguf".length()) : file;
        return new ServedModel(folder, id, template, noTemplate);
    }

    /** The decoder layers whose feed-forward is a mixture of experts, in order. */
    public List<Integer> moeLayers() {
        var layers = new ArrayList<Integer>();
        var specs = folder.config().layers();
        for (int i = 0; i < specs.size(); i++) {
            if (specs.get(i).moe()) {
                layers.add(i);
            }
        }
        return layers;
    }

    /** Routed experts per MoE layer (0 for a dense model). */
    public int numExperts() {
        return folder.config().moe().map(m -> m.experts()).orElse(0);
    }

    /** The longest sequence, prompt and reply together, the model was configured for. */
    public int contextLength() {
        return folder.config().maxPositions();
    }

    @Override
    public void close() {
        folder.close();
    }
}
