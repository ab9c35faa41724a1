//! An in-process server on 127.0.0.1:0 with its own runtime thread, stopped on drop.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use lsm_server::{Config, Server, ServerError};
use tokio::sync::oneshot;

pub struct TestServer {
    pub addr: SocketAddr,
    pub metrics: Option<SocketAddr>,
    pub dir: PathBuf,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<Result<(), ServerError>>>,
}

pub fn config(dir: &std::path::Path) -> Config {
    Config {
        port: 0,
        metrics_port: 0,
        data_dir: dir.to_path_buf(),
        log_level: "warn".into(),
        ..Config::default()
    }
}

impl TestServer {
    pub fn start(config: Config) -> TestServer {
        let dir = config.data_dir.clone();
        let (addr_tx, addr_rx) = mpsc::channel();
        let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let server = match Server::bind(config).await {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = addr_tx.send(Err(e.clone()));
                        return Err(e);
                    }
                };
                let _ = addr_tx.send(Ok((server.local_addr(), server.metrics_addr())));
                server
                    .serve(async move {
                        let _ = shutdown_rx.await;
                    })
                    .await
            })
        });
        let (addr, metrics) = addr_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("server did not start")
            .expect("server failed to bind");
        TestServer {
            addr,
            metrics,
            dir,
            shutdown: Some(shutdown_tx),
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("redis://{}/", self.addr)
    }

    pub fn client(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .unwrap()
            .get_connection()
            .unwrap()
    }

    pub fn resp3_client(&self) -> redis::Connection {
        redis::Client::open(format!("{}?protocol=resp3", self.url()))
            .unwrap()
            .get_connection()
            .unwrap()
    }

    /// Stops the server and waits for a clean shutdown.
    pub fn stop(mut self) {
        self.shutdown.take();
        let result = self
            .thread
            .take()
            .unwrap()
            .join()
            .expect("server thread panicked");
        result.expect("server shut down with an error");
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
