//! Turning a conversation into prompt tokens: the model's own Jinja chat template from its
//! metadata (rendered with minijinja), or, for base models that have none, a plain
//! question/answer transcript the model can continue, cut at the next "질문:".

use super::generator::ChatMessage;
use super::Llm;
use crate::error::{Error, Result};
use minijinja::{Environment, ErrorKind};

/// The line that opens a user turn in the transcript fallback; generation stops before the
/// model writes the next one.
const TRANSCRIPT_USER: &str = "질문: ";
const TRANSCRIPT_ASSISTANT: &str = "답변: ";

/// How conversations are rendered for one model.
pub(super) enum ChatTemplate {
    Jinja {
        env: Box<Environment<'static>>,
        bos: String,
        eos: String,
    },
    /// Base models: `system\n\n질문: …\n답변: …\n\n질문: …\n답변:`.
    Transcript,
}

impl ChatTemplate {
    pub fn from_model(llm: &Llm) -> Result<Self> {
        let Some(source) = llm.chat_template() else {
            return Ok(ChatTemplate::Transcript);
        };
        let mut env = Environment::new();
        minijinja_contrib::add_to_environment(&mut env);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function(
            "raise_exception",
            |msg: String| -> std::result::Result<String, minijinja::Error> {
                Err(minijinja::Error::new(ErrorKind::InvalidOperation, msg))
            },
        );
        env.add_template_owned("chat", source.to_string())
            .map_err(|e| Error::Model(format!("the model's chat template does not parse: {e}")))?;
        let special = llm.tokenizer.special();
        let piece = |id: Option<u32>| {
            id.map(|id| String::from_utf8_lossy(&llm.tokenizer.token_bytes_raw(id)).into_owned())
                .unwrap_or_default()
        };
        Ok(ChatTemplate::Jinja {
            env: Box::new(env),
            bos: piece(special.bos),
            eos: piece(special.eos),
        })
    }

    /// The conversation as prompt text, ending where the assistant's answer begins.
    pub fn render(&self, messages: &[ChatMessage]) -> Result<String> {
        match self {
            ChatTemplate::Jinja { env, bos, eos } => {
                let template = env
                    .get_template("chat")
                    .map_err(|e| Error::Model(e.to_string()))?;
                template
                    .render(minijinja::context! {
                        messages => messages,
                        add_generation_prompt => true,
                        bos_token => bos,
                        eos_token => eos,
                    })
                    .map_err(|e| {
                        Error::InvalidInput(format!(
                            "the chat template refused the conversation: {e}"
                        ))
                    })
            }
            ChatTemplate::Transcript => {
                let mut out = String::new();
                for m in messages {
                    match m.role.as_str() {
                        "system" | "developer" => {
                            out.push_str(m.content.trim());
                            out.push_str("\n\n");
                        }
                        "assistant" => {
                            out.push_str(TRANSCRIPT_ASSISTANT);
                            out.push_str(m.content.trim());
                            out.push_str("\n\n");
                        }
                        _ => {
                            out.push_str(TRANSCRIPT_USER);
                            out.push_str(m.content.trim());
                            out.push('\n');
                        }
                    }
                }
                out.push_str(TRANSCRIPT_ASSISTANT.trim_end());
                Ok(out)
            }
        }
    }

    /// Prompt ids: special tokens written by the template are parsed as such (the contents
    /// of messages cannot smuggle them in: they are rendered as text by the template only
    /// through its own markers), and BOS is not doubled.
    pub fn encode(&self, llm: &Llm, messages: &[ChatMessage]) -> Result<Vec<u32>> {
        for m in messages {
            if llm.tokenizer.contains_special(&m.content) {
                return Err(Error::InvalidInput(format!(
                    "a {} message contains a control token of the model",
                    m.role
                )));
            }
        }
        let text = self.render(messages)?;
        match self {
            ChatTemplate::Jinja { bos, .. } => {
                let add_bos = llm.tokenizer.special().add_bos
                    && (bos.is_empty() || !text.starts_with(bos.as_str()));
                llm.tokenizer.encode(&text, add_bos, true)
            }
            ChatTemplate::Transcript => llm.encode(&text),
        }
    }

    /// Stop sequences the rendering implies.
    pub fn stops(&self) -> Vec<String> {
        match self {
            ChatTemplate::Jinja { .. } => Vec::new(),
            ChatTemplate::Transcript => vec![format!("\n{}", TRANSCRIPT_USER.trim_end())],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transcript_fallback_for_base_models() {
        let t = ChatTemplate::Transcript;
        let msgs = vec![
            ChatMessage {
                role: "system".into(),
                content: "식품 안전 도우미입니다.".into(),
            },
            ChatMessage {
                role: "user".into(),
                content: "HACCP이 뭔가요?".into(),
            },
            ChatMessage {
                role: "assistant".into(),
                content: "식품안전관리인증기준입니다.".into(),
            },
            ChatMessage {
                role: "user".into(),
                content: "누가 인증하나요?".into(),
            },
        ];
        let text = t.render(&msgs).unwrap();
        assert_eq!(
            text,
            "식품 안전 도우미입니다.\n\n질문: HACCP이 뭔가요?\n답변: 식품안전관리인증기준입니다.\n\n질문: 누가 인증하나요?\n답변:"
        );
        assert_eq!(t.stops(), vec!["\n질문:".to_string()]);
    }

    #[test]
    fn jinja_templates_render_like_chatml() {
        let mut env = Environment::new();
        minijinja_contrib::add_to_environment(&mut env);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        // a ChatML-style template written for this test, using Python string methods
        env.add_template_owned(
            "chat",
            "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content.strip() }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}".to_string(),
        )
        .unwrap();
        let t = ChatTemplate::Jinja {
            env: Box::new(env),
            bos: String::new(),
            eos: String::new(),
        };
        let text = t
            .render(&[ChatMessage {
                role: "user".into(),
                content: " 안녕 ".into(),
            }])
            .unwrap();
        assert_eq!(
            text,
            "<|im_start|>user\n안녕<|im_end|>\n<|im_start|>assistant\n"
        );
    }
}
