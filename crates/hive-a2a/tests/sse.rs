//! SSE framing: what the encoder writes decodes to the same data, and the decoder follows the
//! event-stream grammar whatever the chunking.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use hive_a2a::jsonrpc::{Id, Limits, Method, Outcome, Version};
use hive_a2a::sse::{
    Decoder, Event, encode_error_event, encode_event, encode_outcome_event, keep_alive,
};
use hive_a2a::{error::ErrorCode, v1};
use proptest::prelude::*;

fn decode_all(chunks: &[&[u8]]) -> Vec<Event> {
    let mut decoder = Decoder::new(1 << 20);
    let mut events = Vec::new();
    for chunk in chunks {
        events.extend(decoder.feed(chunk).unwrap());
    }
    events
}

fn data(events: &[Event]) -> Vec<&str> {
    events.iter().map(|e| e.data.as_str()).collect()
}

fn working_event() -> Outcome {
    Outcome::Event(v1::StreamResponse::StatusUpdate(
        v1::TaskStatusUpdateEvent {
            task_id: "t-1".into(),
            context_id: "c-1".into(),
            status: v1::TaskStatus {
                state: v1::TaskState::Working,
                ..Default::default()
            },
            metadata: None,
        },
    ))
}

#[test]
fn one_json_rpc_response_per_data_event() {
    let bytes = encode_outcome_event(&Id::from(5), &working_event(), Version::V1_0).unwrap();
    let text = String::from_utf8(bytes.clone()).unwrap();
    assert!(text.starts_with("data: {"), "{text}");
    assert!(text.ends_with("}\n\n"), "{text}");
    assert_eq!(
        text.matches('\n').count(),
        2,
        "one data line, then a blank line: {text}"
    );

    let events = decode_all(&[&bytes]);
    assert_eq!(events.len(), 1);
    let (id, outcome) = events[0]
        .decode(
            Method::SendStreamingMessage,
            Version::V1_0,
            &Limits::default(),
        )
        .unwrap();
    assert_eq!(id, Id::from(5));
    assert_eq!(outcome.unwrap(), working_event());
}

#[test]
fn a_0_3_stream_decodes_to_the_1_0_model() {
    let mut stream = encode_outcome_event(&Id::from("s"), &working_event(), Version::V0_3).unwrap();
    stream.extend_from_slice(keep_alive());
    stream.extend(encode_error_event(
        &Id::from("s"),
        &ErrorCode::InternalError.error(),
        Version::V0_3,
    ));
    let text = String::from_utf8(stream.clone()).unwrap();
    assert!(
        text.contains(r#""kind":"status-update""#) && text.contains(r#""final":false"#),
        "{text}"
    );
    let events = decode_all(&[&stream]);
    assert_eq!(events.len(), 2, "the keep-alive comment is no event");
    let (_, first) = events[0]
        .decode(
            Method::SendStreamingMessage,
            Version::V0_3,
            &Limits::default(),
        )
        .unwrap();
    assert_eq!(first.unwrap(), working_event());
    let (_, second) = events[1]
        .decode(
            Method::SendStreamingMessage,
            Version::V0_3,
            &Limits::default(),
        )
        .unwrap();
    assert_eq!(second.unwrap_err().code, -32603);
}

#[test]
fn multi_line_data_and_line_ends() {
    assert_eq!(encode_event("a\nb"), b"data: a\ndata: b\n\n");
    for stream in [
        &b"data: a\ndata: b\n\n"[..],
        b"data: a\r\ndata: b\r\n\r\n",
        b"data: a\rdata: b\r\r",
        b"data:a\ndata:b\n\n",
    ] {
        assert_eq!(
            data(&decode_all(&[stream])),
            ["a\nb"],
            "{}",
            String::from_utf8_lossy(stream)
        );
    }
    // Only one leading space is removed; other fields and comments are kept out of the data.
    let events = decode_all(&[
        b": comment\nevent: update\nid: 7\nretry: 1500\nfoo: bar\ndata:  two spaces\n\n",
    ]);
    assert_eq!(
        events,
        [Event {
            event: "update".into(),
            data: " two spaces".into(),
            id: Some("7".into()),
            retry: Some(1500)
        }]
    );
    // A field without a colon, and an empty data line.
    assert_eq!(data(&decode_all(&[b"data\ndata: x\n\n"])), ["\nx"]);
    // Blank lines without data dispatch nothing.
    assert!(decode_all(&[b"\n\n: hi\n\nevent: x\n\n"]).is_empty());
}

#[test]
fn chunks_split_anywhere() {
    let stream =
        b"\xEF\xBB\xBFdata: first\r\n\r\ndata: sec\r\ndata: ond\r\n\r\n: ping\n\ndata: third\r\r";
    let whole = decode_all(&[stream]);
    assert_eq!(data(&whole), ["first", "sec\nond", "third"]);
    for size in 1..stream.len() {
        let chunks: Vec<&[u8]> = stream.chunks(size).collect();
        assert_eq!(decode_all(&chunks), whole, "chunks of {size}");
    }
    // A CR at the end of one chunk and the LF at the start of the next are one line end.
    assert_eq!(
        data(&decode_all(&[b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n"])),
        ["a\nb"]
    );
}

#[test]
fn an_unterminated_event_is_dropped() {
    let mut decoder = Decoder::new(1024);
    assert!(decoder.feed(b"data: done\n\ndata: cut").unwrap().len() == 1);
    assert!(decoder.finish(), "something was pending");
    let mut decoder = Decoder::new(1024);
    decoder.feed(b"data: done\n\n").unwrap();
    assert!(!decoder.finish());
}

#[test]
fn oversized_events_are_refused() {
    let mut decoder = Decoder::new(16);
    assert!(decoder.feed(b"data: 0123456789\n").is_ok());
    assert!(decoder.feed(b"data: 0123456789\n").is_err());
    let mut decoder = Decoder::new(16);
    assert!(
        decoder.feed(&[b'x'; 17]).is_err(),
        "one long line without an end"
    );
}

proptest! {
    #[test]
    fn encoded_data_decodes_to_itself(text in "[a-z{}\":, \r\n]{0,40}", size in 1usize..8) {
        let bytes = encode_event(&text);
        let chunks: Vec<&[u8]> = bytes.chunks(size).collect();
        let events = decode_all(&chunks);
        prop_assert_eq!(events.len(), 1);
        prop_assert_eq!(&events[0].data, &text.replace("\r\n", "\n").replace('\r', "\n"));
    }
}
