//! TLS for tokio-postgres over rustls (ring), with libpq's three levels of checking.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore};
use rustls::{Error, SignatureScheme};
use sha2::Digest;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};

pub enum Verify {
    /// `prefer`, `require`: any certificate (the handshake's signatures are still checked).
    Nothing,
    /// `verify-ca`: a chain to one of these roots, for whatever name.
    Chain(RootCertStore),
    /// `verify-full`: a chain to one of these roots, for the server name.
    ChainAndName(RootCertStore),
}

/// Connects with one fixed server name, whatever address the socket goes to.
#[derive(Clone)]
pub struct Connector {
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
}

impl Connector {
    pub fn new(host: &str, verify: Verify) -> Result<Connector, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?;
        let builder = match verify {
            Verify::Nothing => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider))),
            Verify::Chain(roots) => {
                let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                    .build()
                    .map_err(|e| e.to_string())?;
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(ChainOnly(inner)))
            }
            Verify::ChainAndName(roots) => builder.with_root_certificates(roots),
        };
        let mut config = builder.with_no_client_auth();
        // What libpq 17 sends; servers that do not know ALPN ignore it.
        config.alpn_protocols = vec![b"postgresql".to_vec()];
        let name = ServerName::try_from(host.to_string())
            .map_err(|_| format!("`{host}` is not a host name or address"))?;
        Ok(Connector {
            config: Arc::new(config),
            name,
        })
    }
}

impl<S> MakeTlsConnect<S> for Connector
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = Stream<S>;
    type TlsConnect = Connector;
    type Error = io::Error;

    /// `domain` is the address connected to, a tunnel's loopback end through `via`: the
    /// name given to [`Connector::new`] is the one to check.
    fn make_tls_connect(&mut self, _domain: &str) -> io::Result<Connector> {
        Ok(self.clone())
    }
}

impl<S> TlsConnect<S> for Connector
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = Stream<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Stream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        let connector = tokio_rustls::TlsConnector::from(self.config);
        Box::pin(async move { connector.connect(self.name, stream).await.map(Stream) })
    }
}

pub struct Stream<S>(tokio_rustls::client::TlsStream<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Stream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Stream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream for Stream<S> {
    /// SCRAM's `tls-server-end-point` binding: a man in the middle, who cannot present the
    /// server's certificate, then fails the login even when the certificate is not checked.
    fn channel_binding(&self) -> ChannelBinding {
        let leaf = self
            .0
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first());
        match leaf.and_then(|c| end_point(c)) {
            Some(hash) => ChannelBinding::tls_server_end_point(hash),
            None => ChannelBinding::none(),
        }
    }
}

/// RFC 5929 §4.1: the certificate hashed with its signature's hash, SHA-256 for MD5 and
/// SHA-1. `None` for other signatures (RSA-PSS, EdDSA), where the login goes without binding.
pub fn end_point(cert: &[u8]) -> Option<Vec<u8>> {
    const RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01];
    const ECDSA_SHA1: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x01];
    const ECDSA_SHA2: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03];
    // Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue }
    let (body, _) = der(cert, 0x30)?;
    let (_, rest) = der(body, 0x30)?;
    let (alg, _) = der(rest, 0x30)?;
    let (oid, _) = der(alg, 0x06)?;
    let (family, last) = oid.split_at(oid.len().checked_sub(1)?);
    Some(match (family, last[0]) {
        // md5, sha1, sha256 with RSA
        (RSA, 4 | 5 | 11) | (ECDSA_SHA1, 1) | (ECDSA_SHA2, 2) => {
            sha2::Sha256::digest(cert).to_vec()
        }
        (RSA, 12) | (ECDSA_SHA2, 3) => sha2::Sha384::digest(cert).to_vec(),
        (RSA, 13) | (ECDSA_SHA2, 4) => sha2::Sha512::digest(cert).to_vec(),
        _ => return None,
    })
}

/// One DER element of type `tag` at the start of `b`: its content, and what follows it.
fn der(b: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    if *b.first()? != tag {
        return None;
    }
    let first = *b.get(1)?;
    let (len, header) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let len = b
            .get(2..2 + n)?
            .iter()
            .fold(0usize, |acc, &x| (acc << 8) | usize::from(x));
        (len, 2 + n)
    };
    let content = b.get(header..header.checked_add(len)?)?;
    Some((content, &b[header + len..]))
}

/// The first rustls error in a failed login's causes (tokio-rustls wraps it in an
/// `io::Error`, whose `source()` skips it).
pub fn rustls_cause<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a Error> {
    let mut next = Some(e);
    while let Some(c) = next {
        if let Some(r) = c.downcast_ref::<Error>() {
            return Some(r);
        }
        if let Some(r) = c
            .downcast_ref::<io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<Error>())
        {
            return Some(r);
        }
        next = c.source();
    }
    None
}

/// `verify-ca`: the full webpki check, less the name.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        // webpki checks the chain (and validity dates) before the name: a name error means
        // the chain was good.
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// `prefer`, `require`: no certificate check, as in libpq.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A certificate's outer structure: the TBS part (empty here), the signature algorithm
    /// with this OID, and the signature.
    fn cert_signed_with(oid: &[u8]) -> Vec<u8> {
        let mut alg = vec![0x30, oid.len() as u8 + 2, 0x06, oid.len() as u8];
        alg.extend_from_slice(oid);
        let mut body = vec![0x30, 0x00];
        body.extend_from_slice(&alg);
        body.extend_from_slice(&[0x03, 0x01, 0x00]);
        let mut cert = vec![0x30, body.len() as u8];
        cert.extend_from_slice(&body);
        cert
    }

    #[test]
    fn channel_binding_hashes_with_the_signature_hash() {
        let ecdsa_sha256 = cert_signed_with(&[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02]);
        let ecdsa_sha384 = cert_signed_with(&[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03]);
        let rsa_sha1 = cert_signed_with(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x05]);
        let rsa_sha512 = cert_signed_with(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d]);
        let ed25519 = cert_signed_with(&[0x2b, 0x65, 0x70]);
        let len = |c: &[u8]| end_point(c).map(|h| h.len());
        assert_eq!(len(&ecdsa_sha256), Some(32));
        assert_eq!(len(&ecdsa_sha384), Some(48));
        // MD5 and SHA-1 are replaced by SHA-256 (RFC 5929).
        assert_eq!(len(&rsa_sha1), Some(32));
        assert_eq!(len(&rsa_sha512), Some(64));
        assert_eq!(len(&ed25519), None);
        assert_eq!(len(&[0x30, 0x05, 0x30]), None);
        assert_eq!(len(&[]), None);
    }
}
