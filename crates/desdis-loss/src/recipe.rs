//! Teacher recipes by name, and their configurations as one serialisable value.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};
use crate::hardnet::{HardNetConfig, HardNetLoss};
use crate::hynet::{HyNetConfig, HyNetLoss};
use crate::sosnet::{SosNetConfig, SosNetLoss};
use crate::tfeat::{TfeatConfig, TfeatLoss};
use crate::triplet::TripletLoss;

/// The triplet loss a teacher recipe trains with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LossKind {
    HardNet,
    /// L2-Net's architecture trained with HardNet's loss.
    L2Net,
    SosNet,
    HyNet,
    TFeat,
}

impl LossKind {
    /// Every kind, in a stable order.
    pub const ALL: [LossKind; 5] = [Self::HardNet, Self::L2Net, Self::SosNet, Self::HyNet, Self::TFeat];

    /// The lowercase name: `hardnet`, `l2net`, `sosnet`, `hynet`, `tfeat`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HardNet => "hardnet",
            Self::L2Net => "l2net",
            Self::SosNet => "sosnet",
            Self::HyNet => "hynet",
            Self::TFeat => "tfeat",
        }
    }

    /// The recipe's loss with its published settings.
    pub fn default_config(self) -> LossConfig {
        match self {
            Self::HardNet | Self::L2Net => LossConfig::HardNet(HardNetConfig::default()),
            Self::SosNet => LossConfig::SosNet(SosNetConfig::default()),
            Self::HyNet => LossConfig::HyNet(HyNetConfig::default()),
            Self::TFeat => LossConfig::TFeat(TfeatConfig::default()),
        }
    }

    /// The recipe's loss with its published settings, ready to use.
    pub fn build(self) -> Result<Box<dyn TripletLoss>> {
        self.default_config().build()
    }
}

impl fmt::Display for LossKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for LossKind {
    type Err = Error;

    /// Parses a name case-insensitively.
    fn from_str(s: &str) -> Result<Self> {
        let lower = s.trim().to_ascii_lowercase();
        Self::ALL.into_iter().find(|k| k.as_str() == lower).ok_or_else(|| Error::UnknownLoss(s.to_string()))
    }
}

/// A triplet loss and its settings, tagged by `kind` when serialised, e.g.
/// `{ "kind": "hynet", "margin": 1.2 }`; omitted fields take the published values, and `l2net`
/// reads as `hardnet`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum LossConfig {
    #[serde(alias = "l2net")]
    HardNet(HardNetConfig),
    SosNet(SosNetConfig),
    HyNet(HyNetConfig),
    TFeat(TfeatConfig),
}

impl Default for LossConfig {
    fn default() -> Self {
        Self::HardNet(HardNetConfig::default())
    }
}

impl LossConfig {
    /// The loss this configures, validated.
    pub fn build(&self) -> Result<Box<dyn TripletLoss>> {
        Ok(match self {
            Self::HardNet(c) => Box::new(HardNetLoss::new(c.clone())?),
            Self::SosNet(c) => Box::new(SosNetLoss::new(c.clone())?),
            Self::HyNet(c) => Box::new(HyNetLoss::new(c.clone())?),
            Self::TFeat(c) => Box::new(TfeatLoss::new(c.clone())?),
        })
    }
}
