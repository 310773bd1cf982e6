mod pb {
    tonic::include_proto!("switchboard.v1");
}
fn main() {}
impl std::fmt::Debug for pb::Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("x")
    }
}
impl std::fmt::Debug for pb::AgentCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("x")
    }
}
