//! Serves the browser pages on the gRPC port: every GET or HEAD is a page request (gRPC and
//! gRPC-web calls are POSTs and pass through). The pages are public, like a login form: all
//! they show comes from calls the policy table guards.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::future::BoxFuture;
use http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, IF_NONE_MATCH,
    X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use tonic::body::Body;
use tower::{Layer, Service};

use super::WebOrigins;

/// `web/dist`, built by `npm run build` in `web/` and committed, so that building the server
/// needs no Node.js.
#[derive(rust_embed::Embed)]
#[folder = "web/dist/"]
struct Dist;

/// Where the pages come from.
#[derive(Debug, Clone)]
pub enum PageSource {
    /// The copy built into the binary.
    Embedded,
    /// A folder read on each request (`--web-dir`), for working on the pages.
    Folder(PathBuf),
}

/// A page's bytes and what to say of them.
struct Page {
    body: Vec<u8>,
    content_type: String,
    etag: Option<String>,
}

struct Pages {
    source: PageSource,
    config: Vec<u8>,
    csp: HeaderValue,
}

/// Answers page requests in front of the gRPC services.
#[derive(Clone)]
pub struct PagesLayer {
    pages: Arc<Pages>,
}

impl PagesLayer {
    pub fn new(source: PageSource, origins: &WebOrigins) -> Self {
        Self {
            pages: Arc::new(Pages {
                source,
                config: super::page_config(origins),
                csp: super::content_security_policy(origins),
            }),
        }
    }
}

impl<S> Layer<S> for PagesLayer {
    type Service = PagesService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        PagesService {
            inner,
            pages: Arc::clone(&self.pages),
        }
    }
}

#[derive(Clone)]
pub struct PagesService<S> {
    inner: S,
    pages: Arc<Pages>,
}

impl<S> Service<Request<Body>> for PagesService<S>
where
    S: Service<Request<Body>, Response = Response<Body>> + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Response<Body>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        if request.method() != Method::GET && request.method() != Method::HEAD {
            return Box::pin(self.inner.call(request));
        }
        let pages = Arc::clone(&self.pages);
        // Only what the answer needs crosses the await: a request body is not `Sync`.
        let asked = Asked {
            head: request.method() == Method::HEAD,
            path: request.uri().path().to_owned(),
            seen: request.headers().get(IF_NONE_MATCH).cloned(),
        };
        Box::pin(async move { Ok(pages.answer(asked).await) })
    }
}

/// A page request: HEAD or GET, the path, and the ETag the browser has.
struct Asked {
    head: bool,
    path: String,
    seen: Option<HeaderValue>,
}

impl Pages {
    async fn answer(&self, asked: Asked) -> Response<Body> {
        let page = match asked.path.as_str() {
            "/web-config.json" => Some(Page {
                body: self.config.clone(),
                content_type: "application/json".into(),
                etag: None,
            }),
            path => match file_name(path) {
                Some(name) => self.load(&name).await,
                None => None,
            },
        };
        let Some(page) = page else {
            return plain(StatusCode::NOT_FOUND, "no such page\n");
        };
        let unchanged = page.etag.as_deref().is_some_and(|etag| {
            asked
                .seen
                .is_some_and(|seen| seen.as_bytes() == etag.as_bytes())
        });
        let (status, body) = if unchanged {
            (StatusCode::NOT_MODIFIED, Vec::new())
        } else if asked.head {
            (StatusCode::OK, Vec::new())
        } else {
            (StatusCode::OK, page.body)
        };
        let mut response = Response::builder()
            .status(status)
            .header(CONTENT_TYPE, page.content_type)
            // Always revalidated (cheaply, by ETag): a new server version shows at once.
            .header(CACHE_CONTROL, "no-cache")
            .header(X_CONTENT_TYPE_OPTIONS, "nosniff")
            .header(X_FRAME_OPTIONS, "DENY")
            .header(CONTENT_SECURITY_POLICY, self.csp.clone());
        if let Some(etag) = page.etag {
            response = response.header(ETAG, etag);
        }
        response
            .body(Body::new(Full::new(bytes_of(body))))
            .unwrap_or_else(|_| plain(StatusCode::INTERNAL_SERVER_ERROR, "bad page headers\n"))
    }

    async fn load(&self, name: &str) -> Option<Page> {
        match &self.source {
            PageSource::Embedded => {
                let file = Dist::get(name)?;
                let hash: String = file
                    .metadata
                    .sha256_hash()
                    .iter()
                    .take(16)
                    .map(|b| format!("{b:02x}"))
                    .collect();
                Some(Page {
                    content_type: file.metadata.mimetype().to_owned(),
                    body: file.data.into_owned(),
                    etag: Some(format!("\"{hash}\"")),
                })
            }
            PageSource::Folder(dir) => {
                let body = tokio::fs::read(dir.join(name)).await.ok()?;
                Some(Page {
                    content_type: mime_guess::from_path(name)
                        .first_or_octet_stream()
                        .to_string(),
                    body,
                    etag: None,
                })
            }
        }
    }
}

/// The file a page path names: `/` is the desktop, `/wallboard` the wallboard, anything else
/// a file of `web/dist` by its name. Paths that climb out (`..`) or hide (`.x`) name nothing.
fn file_name(path: &str) -> Option<String> {
    let name = match path {
        "/" => "index.html",
        "/wallboard" | "/wallboard/" => "wallboard.html",
        other => other.strip_prefix('/')?,
    };
    let plain = Path::new(name)
        .components()
        .all(|c| matches!(c, Component::Normal(part) if !part.to_string_lossy().starts_with('.')));
    (plain && !name.is_empty()).then(|| name.to_owned())
}

fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut response = Response::new(Body::new(Full::new(bytes_of(text.as_bytes().to_vec()))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn bytes_of(body: Vec<u8>) -> tonic::codegen::Bytes {
    tonic::codegen::Bytes::from(body)
}

#[cfg(test)]
mod tests {
    use super::file_name;

    #[test]
    fn page_paths_name_files_of_dist_only() {
        assert_eq!(file_name("/").as_deref(), Some("index.html"));
        assert_eq!(file_name("/wallboard").as_deref(), Some("wallboard.html"));
        assert_eq!(file_name("/desktop.js").as_deref(), Some("desktop.js"));
        for refused in ["/../Cargo.toml", "/a/../../x", "/.env", "", "//etc/passwd"] {
            assert_eq!(file_name(refused), None, "{refused}");
        }
    }
}
