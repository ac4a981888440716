//! The worker's connection task against a scripted server on a real socket: a trial keeps
//! running while the socket is down, and its reports arrive after the reconnect, in order.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

use albedo_shared::experiment::TrialId;
use albedo_shared::protocol::{LeaseId, PROTOCOL_VERSION, ServerMsg, TrialSpec, WorkerMsg};
use albedo_worker::client::{ClientConfig, run};

type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

async fn recv(ws: &mut Ws) -> WorkerMsg {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a frame in time")
            .expect("socket open")
            .expect("no socket error");
        if let Message::Text(t) = frame {
            return serde_json::from_str(t.as_str()).expect("a worker message");
        }
    }
}

/// Accepts the next worker, checks its hello and welcomes it.
async fn accept(listener: &TcpListener) -> Ws {
    let (tcp, _) = tokio::time::timeout(Duration::from_secs(10), listener.accept())
        .await
        .expect("the worker (re)connects")
        .unwrap();
    let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
    match recv(&mut ws).await {
        WorkerMsg::Hello {
            protocol_version,
            slots,
            ..
        } => {
            assert_eq!(protocol_version, PROTOCOL_VERSION);
            assert_eq!(slots, 2);
        }
        other => panic!("expected hello, got {other:?}"),
    }
    let welcome = ServerMsg::Welcome {
        worker_id: "w1".into(),
        heartbeat_interval_secs: 30,
    };
    send(&mut ws, &welcome).await;
    ws
}

async fn send(ws: &mut Ws, msg: &ServerMsg) {
    let text = serde_json::to_string(msg).unwrap();
    ws.send(Message::Text(text.into())).await.unwrap();
}

#[tokio::test]
async fn reports_survive_a_reconnect_in_order() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let worker = tokio::spawn(run(ClientConfig {
        server: format!("http://{addr}"),
        token: "t".into(),
        name: "test".into(),
        slots: 2,
        devices: vec![],
        max_backoff: Duration::from_millis(500),
    }));

    let mut ws = accept(&listener).await;
    // 10 steps of 20 ms.
    let params = [
        ("lr".to_string(), json!(0.01)),
        ("width".to_string(), json!(16)),
        ("dropout".to_string(), json!(0.2)),
    ]
    .into();
    let assign = ServerMsg::Assign {
        lease: LeaseId(5),
        trial: TrialId(1),
        experiment: "e".into(),
        attempt: 1,
        spec: TrialSpec::synthetic(10),
        params,
        resource: None,
        may_wait: false,
    };
    send(&mut ws, &assign).await;
    let mut steps = Vec::new();
    while steps.len() < 2 {
        match recv(&mut ws).await {
            WorkerMsg::Metric { lease, step, .. } => {
                assert_eq!(lease, LeaseId(5));
                steps.push(step);
                if step == 1 {
                    // Only the first report is acknowledged.
                    send(&mut ws, &ServerMsg::Ack { count: 1 }).await;
                }
            }
            WorkerMsg::Heartbeat => {}
            other => panic!("expected a metric, got {other:?}"),
        }
    }
    // The server goes away (what the worker sent meanwhile is lost with the socket); the
    // worker backs off (500 ms), during which the trial ends.
    drop(ws);
    let mut ws = accept(&listener).await;
    // The unacknowledged reports come first: from step 2 on.
    match recv(&mut ws).await {
        WorkerMsg::Metric { step, .. } => assert_eq!(step, 2),
        other => panic!("expected metric 2, got {other:?}"),
    }
    let finished = loop {
        match recv(&mut ws).await {
            WorkerMsg::Metric { lease, step, .. } => {
                assert_eq!(lease, LeaseId(5));
                steps.push(step);
            }
            WorkerMsg::Heartbeat => {}
            end => break end,
        }
    };
    assert!(
        matches!(finished, WorkerMsg::Finished { lease: LeaseId(5), ref final_values, .. } if final_values.contains_key("accuracy")),
        "{finished:?}"
    );
    // At least once, in order: step 2 came twice, none is lost.
    assert_eq!(steps[..3], [1, 2, 3]);
    steps.dedup();
    assert_eq!(steps, (1..=10).collect::<Vec<u32>>());

    // A continue for a lease this worker does not run is answered failed.
    send(
        &mut ws,
        &ServerMsg::Continue {
            lease: LeaseId(99),
            resource: None,
        },
    )
    .await;
    match recv(&mut ws).await {
        WorkerMsg::Failed { lease, reason } => {
            assert_eq!(lease, LeaseId(99));
            assert!(reason.contains("not running"), "{reason}");
        }
        other => panic!("expected failed, got {other:?}"),
    }
    worker.abort();
}
