"""A Qwen2.5-VL tokenizer and processor built on the spot, with no download:
one token per byte plus Qwen's special tokens, Qwen2-VL's image processor
(patch 14, merge 2), and a chat template in Qwen2.5's hermes tool format
with images. Enough for verl's agent loop to run as it runs on the real
model; the vocabulary is not Qwen's."""

from __future__ import annotations

SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
           "<|image_pad|>", "<|video_pad|>"]
# Added but not special in Qwen2.5: they survive skip_special_tokens, as on the real model.
ADDED = ["<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>"]

CHAT_TEMPLATE = r"""{%- macro render(content) -%}
{%- if content is string -%}{{ content }}{%- else -%}
{%- for c in content -%}
{%- if c.type == 'image' or 'image' in c or 'image_url' in c -%}<|vision_start|><|image_pad|><|vision_end|>
{%- elif 'text' in c -%}{{ c.text }}{%- endif -%}
{%- endfor -%}{%- endif -%}
{%- endmacro -%}
{%- if tools -%}<|im_start|>system
{% if messages[0].role == 'system' %}{{ render(messages[0].content) }}{% else %}You are a helpful assistant.{% endif %}

# Tools

You may call one or more functions to assist with the user query.

You are provided with function signatures within <tools></tools> XML tags:
<tools>
{%- for tool in tools %}
{{ tool | tojson }}
{%- endfor %}
</tools>

For each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:
<tool_call>
{"name": <function-name>, "arguments": <args-json-object>}
</tool_call><|im_end|>
{% elif messages[0].role == 'system' -%}<|im_start|>system
{{ render(messages[0].content) }}<|im_end|>
{% endif -%}
{%- for message in messages -%}
{%- if message.role == 'system' and loop.first -%}
{%- elif message.role == 'user' or message.role == 'system' -%}<|im_start|>{{ message.role }}
{{ render(message.content) }}<|im_end|>
{% elif message.role == 'assistant' -%}<|im_start|>assistant
{{ render(message.content) }}
{%- for tc in message.tool_calls or [] -%}
{%- set f = tc.function if tc.function is defined else tc -%}
<tool_call>
{"name": "{{ f.name }}", "arguments": {{ f.arguments if f.arguments is string else (f.arguments | tojson) }}}
</tool_call>
{%- endfor %}<|im_end|>
{% elif message.role == 'tool' -%}
{%- if loop.first or messages[loop.index0 - 1].role != 'tool' -%}<|im_start|>user{%- endif %}
<tool_response>
{{ render(message.content) }}
</tool_response>
{%- if loop.last or messages[loop.index0 + 1].role != 'tool' -%}<|im_end|>
{% endif -%}
{%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}<|im_start|>assistant
{% endif -%}"""


def tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast
    vocab = {ch: i for i, ch in enumerate(pre_tokenizers.ByteLevel.alphabet())}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   additional_special_tokens=SPECIAL)
    fast.add_tokens(ADDED)
    fast.chat_template = CHAT_TEMPLATE
    return fast


def processor():
    from transformers import Qwen2_5_VLProcessor
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import Qwen2VLImageProcessor
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

    ip = Qwen2VLImageProcessor(patch_size=14, temporal_patch_size=2, merge_size=2,
                               min_pixels=28 * 28 * 4, max_pixels=28 * 28 * 64)
    tok = tokenizer()
    return Qwen2_5_VLProcessor(image_processor=ip, tokenizer=tok, video_processor=Qwen2VLVideoProcessor(),
                               chat_template=CHAT_TEMPLATE)
