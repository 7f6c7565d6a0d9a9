//! Huawei Cloud DNS as a publisher: record sets of a public zone, over the v2 API
//! (`GET /v2/zones?name=`, `POST`/`GET /v2/zones/{id}/recordsets`, `PUT`/`DELETE
//! /v2/zones/{id}/recordsets/{id}`), every request signed with AK/SK by
//! [`crate::huawei_sign::AkSk`] through the transport's signing hook.
//!
//! The record-set API is not in providers.md; its shape here (names with a trailing dot, TXT
//! values in double quotes, `records` as a list) follows Huawei's public DNS API reference and
//! is what the simulator serves.

use anyhow::{anyhow, bail};
use serde_json::{Value, json};

use super::DnsRecord;
use crate::ca::http::{Body, Expect, HttpOptions, Request, Transport};
use crate::config::DnsBackend;

/// The global endpoint.
pub const DEFAULT_ENDPOINT: &str = "https://dns.myhuaweicloud.com";

/// A signed client for one endpoint.
pub struct HuaweiDns {
    transport: Transport,
}

impl HuaweiDns {
    /// The client `[dns]` (or a zone's table) describes.
    pub fn from_backend(backend: &DnsBackend) -> anyhow::Result<HuaweiDns> {
        let (Some(ak), Some(sk)) = (&backend.access_key, &backend.secret_key) else {
            bail!("[dns] provider = \"huaweicloud\" needs `access_key` and `secret_key`");
        };
        let endpoint = backend.endpoint.as_deref().unwrap_or(DEFAULT_ENDPOINT);
        crate::config::validate_base_url(endpoint).map_err(|e| anyhow!("[dns] endpoint: {e}"))?;
        let options = HttpOptions {
            retries: 1,
            ..HttpOptions::default()
        };
        let transport = Transport::new(endpoint, options)?.with_signer(crate::huawei_sign::AkSk {
            ak: ak.clone(),
            sk: sk.clone(),
        });
        Ok(HuaweiDns { transport })
    }

    /// Runs `f` to completion on a runtime of its own (the publisher is called from sync code
    /// that may itself run inside a runtime).
    fn block<T: Send>(
        &self,
        f: impl std::future::Future<Output = anyhow::Result<T>> + Send,
    ) -> anyhow::Result<T> {
        std::thread::scope(|s| {
            s.spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?
                    .block_on(f)
            })
            .join()
            .map_err(|_| anyhow!("the Huawei Cloud DNS call panicked"))?
        })
    }

    async fn call(&self, request: Request) -> anyhow::Result<Value> {
        let request = request.expect(Expect::Any);
        let answer = self.transport.send(&request).await?;
        let body: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
        if !(200..300).contains(&answer.status) {
            let code = body["error_code"].as_str().unwrap_or("?");
            let msg = body["error_msg"].as_str().unwrap_or("");
            bail!(
                "Huawei Cloud DNS {} answered HTTP {} {code}: {msg}; check access_key/secret_key \
                 and that the key may manage the zone",
                request.endpoint,
                answer.status
            );
        }
        Ok(body)
    }

    async fn zone_id(&self, zone: &str) -> anyhow::Result<String> {
        let mut request = Request::get("/v2/zones");
        request.query = vec![
            ("type".into(), "public".into()),
            ("name".into(), format!("{zone}.")),
        ];
        let body = self.call(request).await?;
        (body["zones"].as_array().into_iter().flatten())
            .find(|z| z["name"].as_str().map(|n| n.trim_end_matches('.')) == Some(zone))
            .and_then(|z| z["id"].as_str().map(str::to_string))
            .ok_or_else(|| anyhow!("Huawei Cloud DNS has no public zone {zone} for this key"))
    }

    /// The value as Huawei stores it: TXT in double quotes, CNAME with a trailing dot.
    fn stored(record: &DnsRecord) -> String {
        if record.record_type == "TXT" {
            format!("\"{}\"", record.value)
        } else {
            format!("{}.", record.value)
        }
    }

    /// The record sets at `record`'s owner and type (at most one, as Huawei Cloud DNS keeps
    /// one set per name and type), with the zone's id.
    async fn sets_at(&self, record: &DnsRecord) -> anyhow::Result<(String, Vec<Value>)> {
        let zone = self.zone_id(&record.zone).await?;
        let mut request = Request::get(&format!("/v2/zones/{zone}/recordsets"));
        request.query = vec![
            ("name".into(), format!("{}.", record.owner)),
            ("type".into(), record.record_type.clone()),
        ];
        let body = self.call(request).await?;
        let owner = format!("{}.", record.owner);
        let sets = (body["recordsets"].as_array().into_iter().flatten())
            .filter(|r| {
                r["name"]
                    .as_str()
                    .is_some_and(|n| n.eq_ignore_ascii_case(&owner))
            })
            .filter(|r| r["type"].as_str() == Some(record.record_type.as_str()))
            .cloned()
            .collect();
        Ok((zone, sets))
    }

    /// The values a record set holds.
    fn values(set: &Value) -> Vec<String> {
        (set["records"].as_array().into_iter().flatten())
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect()
    }

    /// Replaces the values of the record set `id` (`PUT /v2/zones/{zone}/recordsets/{id}`).
    async fn update(&self, zone: &str, id: &str, records: Vec<String>) -> anyhow::Result<()> {
        let endpoint = format!("/v2/zones/{zone}/recordsets/{id}");
        let body = json!({ "records": records });
        let request = Request::new(reqwest::Method::PUT, &endpoint, Body::Json(body));
        self.call(request).await.map(drop)
    }

    /// Publishes `record`: a new record set, or — when its owner already has a set of that type
    /// (a wildcard and its apex share one TXT owner) — one more value in that set.
    pub fn add(&self, record: &DnsRecord, ttl: u32) -> anyhow::Result<()> {
        self.block(async {
            let want = Self::stored(record);
            let (zone, sets) = self.sets_at(record).await?;
            if let Some(set) = sets.first() {
                let mut records = Self::values(set);
                if records.contains(&want) {
                    return Ok(());
                }
                records.push(want);
                let id = set["id"].as_str().unwrap_or_default();
                return self.update(&zone, id, records).await;
            }
            let body = json!({
                "name": format!("{}.", record.owner),
                "type": record.record_type,
                "ttl": ttl,
                "records": [want],
                "description": "enc365-nginx domain validation",
            });
            let endpoint = format!("/v2/zones/{zone}/recordsets");
            self.call(Request::post(&endpoint, Body::Json(body)))
                .await?;
            Ok(())
        })
    }

    /// Takes `record`'s value out: the record set goes when it held nothing else, otherwise
    /// only that value leaves it (the other values, ours or not, stay).
    pub fn remove(&self, record: &DnsRecord) -> anyhow::Result<()> {
        self.block(async {
            let want = Self::stored(record);
            let (zone, sets) = self.sets_at(record).await?;
            for set in sets {
                let mut records = Self::values(&set);
                if !records.contains(&want) {
                    continue;
                }
                records.retain(|v| *v != want);
                let id = set["id"].as_str().unwrap_or_default();
                if !records.is_empty() {
                    self.update(&zone, id, records).await?;
                    continue;
                }
                let endpoint = format!("/v2/zones/{zone}/recordsets/{id}");
                let delete = Request::new(reqwest::Method::DELETE, &endpoint, Body::Empty);
                self.call(delete).await?;
            }
            Ok(())
        })
    }
}
