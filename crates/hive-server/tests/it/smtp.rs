//! A minimal SMTP receiver on loopback: the relay double for mail tests (no mail server runs on
//! this machine). It speaks just enough of RFC 5321 for a client to deliver a message.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

pub struct FakeSmtp {
    pub url: String,
    messages: mpsc::UnboundedReceiver<String>,
    connections: Arc<AtomicUsize>,
}

impl FakeSmtp {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("smtp://{}", listener.local_addr().unwrap());
        let (sender, messages) = mpsc::unbounded_channel();
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&connections);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(session(stream, sender.clone()));
            }
        });
        Self {
            url,
            messages,
            connections,
        }
    }

    /// The next delivered message (headers and body, transfer encoding undone).
    pub async fn next_message(&mut self) -> String {
        let raw = tokio::time::timeout(std::time::Duration::from_secs(20), self.messages.recv())
            .await
            .expect("a message within 20 s")
            .unwrap();
        // Quoted-printable soft breaks and the encoded '='.
        raw.replace("=\r\n", "").replace("=3D", "=")
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

async fn session(stream: TcpStream, delivered: mpsc::UnboundedSender<String>) {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    write.write_all(b"220 fake ESMTP\r\n").await.unwrap();
    while let Ok(Some(line)) = lines.next_line().await {
        let verb = line.get(..4).unwrap_or_default().to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" | "HELO" => b"250 fake\r\n",
            "DATA" => {
                write.write_all(b"354 end with .\r\n").await.unwrap();
                let mut message = String::new();
                while let Ok(Some(data)) = lines.next_line().await {
                    if data == "." {
                        break;
                    }
                    message.push_str(&data);
                    message.push_str("\r\n");
                }
                let _ = delivered.send(message);
                b"250 queued\r\n"
            }
            "QUIT" => {
                write.write_all(b"221 bye\r\n").await.unwrap();
                return;
            }
            _ => b"250 OK\r\n",
        };
        write.write_all(reply).await.unwrap();
    }
}
