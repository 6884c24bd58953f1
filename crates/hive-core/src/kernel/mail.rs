//! Outgoing mail (password-reset links) through the operator's SMTP relay (`SMTP_URL`).

use crate::kernel::config::SmtpConfig;
use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::ExposeSecret;
use std::time::Duration;

/// A relay that does not answer within this is given up on (the mail is not sent).
const SMTP_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// The configuration was accepted but the transport refuses it (never quotes the URL).
    #[error("SMTP_URL cannot be used: {0}")]
    Config(String),
    #[error("invalid address: {0}")]
    Address(String),
    /// The relay refused or could not be reached; the reason never holds the credentials.
    #[error("sending failed: {0}")]
    Send(String),
}

/// Sends plain-text mail through one relay.
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer")
            .field("from", &self.from.to_string())
            .finish()
    }
}

impl Mailer {
    pub fn new(config: &SmtpConfig) -> Result<Self, MailError> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(config.url.expose_secret())
            .map_err(|e| MailError::Config(kind_only(&e)))?
            .timeout(Some(SMTP_TIMEOUT))
            .build();
        let from = config
            .from
            .parse()
            .map_err(|_| MailError::Address("SMTP_FROM".into()))?;
        Ok(Self { transport, from })
    }

    pub async fn send(&self, to: &str, subject: &str, body: String) -> Result<(), MailError> {
        let to: Mailbox = to
            .parse()
            .map_err(|_| MailError::Address("recipient".into()))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .body(body)
            .map_err(|e| MailError::Send(e.to_string()))?;
        self.transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| MailError::Send(kind_only(&e)))
    }
}

/// What went wrong, without the text of the error (which may quote the server's URL).
fn kind_only(error: &lettre::transport::smtp::Error) -> String {
    if error.is_timeout() {
        "the relay did not answer in time".into()
    } else if error.is_permanent() {
        "the relay refused the message".into()
    } else if error.is_transient() {
        "the relay deferred the message".into()
    } else if error.is_tls() {
        "TLS with the relay failed".into()
    } else {
        "the relay could not be reached or the URL is unusable".into()
    }
}
