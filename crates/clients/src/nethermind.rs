//! placeholder
use crate::{ClientSpec, HostFacts};
use ethnode_config::Config;
pub(crate) fn spec(_config: &Config, _host: &HostFacts) -> ClientSpec {
    unimplemented!()
}
