//! A webhook: POST JSON (the event with `id`, or `{"text"}` for Slack and Mattermost), signed
//! with `X-Opsdeck-Signature: sha256=<hex HMAC-SHA256 of the body>` when a secret is set.

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

use super::{SendError, body_text, judge, payload, retry_after, transport};
use crate::notify::{Delivery, WebhookFormat};

/// `sha256=<hex>`: HMAC-SHA256 of `body` with `secret`.
#[allow(
    clippy::expect_used,
    reason = "HMAC accepts keys of any length; new_from_slice cannot fail for it"
)]
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(body);
    let bytes = mac.finalize().into_bytes();
    let mut hex = String::with_capacity(7 + bytes.len() * 2);
    hex.push_str("sha256=");
    for b in bytes {
        hex.push_str(&format!("{b:02x}"));
    }
    hex
}

/// The body for `format`.
pub fn body(format: WebhookFormat, d: &Delivery) -> Vec<u8> {
    let v = match format {
        WebhookFormat::Json => payload(d),
        WebhookFormat::Slack => serde_json::json!({ "text": d.event.text() }),
    };
    serde_json::to_vec(&v).unwrap_or_default()
}

/// Posts `d` to `url`. The URL is a secret (a Slack hook's path is its credential): no error
/// names it.
pub async fn send(
    client: &reqwest::Client,
    url: &SecretString,
    format: WebhookFormat,
    secret: Option<&SecretString>,
    d: &Delivery,
) -> Result<(), SendError> {
    let body = body(format, d);
    let mut req = client
        .post(url.expose_secret())
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("X-Opsdeck-Delivery", d.id.to_string())
        .header("X-Opsdeck-Event", d.event.kind.as_str());
    if let Some(s) = secret {
        req = req.header(
            "X-Opsdeck-Signature",
            signature(s.expose_secret().as_bytes(), &body),
        );
    }
    let resp = req
        .body(body)
        .send()
        .await
        .map_err(|e| transport("webhook", e))?;
    let status = resp.status();
    let after = retry_after(resp.headers());
    let text = body_text(resp).await;
    judge("webhook", status, after, &text)
}

#[cfg(test)]
mod tests {
    #[test]
    fn signature_matches_a_known_vector() {
        // RFC 4231 test case 2.
        assert_eq!(
            super::signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
