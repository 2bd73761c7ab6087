//! Optimizers with PyTorch's update rules and state that can be saved and restored exactly.
//!
//! Parameters are addressed by their state-dict key, so optimizer state saved next to a checkpoint
//! resumes the same run bit for bit. Variables that received no gradient (batch-norm running
//! statistics, a frozen teacher) are left untouched, weight decay included.

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor, Var};
use serde::{Deserialize, Serialize};

/// Which update rule, with the published recipes' hyper-parameters as fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum OptimizerConfig {
    /// SGD with momentum, dampening and L2 weight decay, as `torch.optim.SGD`.
    Sgd { momentum: f64, dampening: f64, weight_decay: f64 },
    /// Adam with L2 weight decay added to the gradient, as `torch.optim.Adam`.
    Adam { beta1: f64, beta2: f64, eps: f64, weight_decay: f64 },
}

impl OptimizerConfig {
    /// HardNet's recipe: momentum 0.9, dampening 0.9, weight decay 1e-4.
    pub fn hardnet_sgd() -> Self {
        Self::Sgd { momentum: 0.9, dampening: 0.9, weight_decay: 1e-4 }
    }
    /// TFeat's recipe: plain momentum SGD with weight decay 1e-4.
    pub fn tfeat_sgd() -> Self {
        Self::Sgd { momentum: 0.9, dampening: 0.0, weight_decay: 1e-4 }
    }
    /// Adam as SOSNet and HyNet train with it: PyTorch's defaults and no weight decay (their
    /// published training script passes none).
    pub fn adam() -> Self {
        Self::Adam { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0 }
    }
}

/// An optimizer over named variables.
pub struct Optimizer {
    config: OptimizerConfig,
    params: Vec<(String, Var)>,
    /// Per-parameter state tensors, keyed `"<param>.<slot>"` (slots: `momentum`, `exp_avg`, `exp_avg_sq`).
    state: HashMap<String, Tensor>,
    step: u64,
}

impl Optimizer {
    /// Optimizes `params` (name, variable), sorted by name so the update order never depends on a hash map.
    pub fn new(config: OptimizerConfig, mut params: Vec<(String, Var)>) -> Self {
        params.sort_by(|a, b| a.0.cmp(&b.0));
        Self { config, params, state: HashMap::new(), step: 0 }
    }

    /// Number of updates applied so far.
    pub fn step_count(&self) -> u64 {
        self.step
    }

    /// Applies one update with learning rate `lr` from the gradients in `grads`.
    ///
    /// Everything here is computed from detached tensors. A variable's tensor tracks its ops, so
    /// `w * weight_decay` on it would start an autograd graph; the momentum or moment buffers
    /// derived from it would then hold the previous buffer, that step's gradient and every
    /// intermediate alive, one more link per step, for the whole run.
    pub fn step(&mut self, grads: &GradStore, lr: f64) -> Result<()> {
        self.step += 1;
        for (name, var) in &self.params {
            let Some(grad) = grads.get(var.as_tensor()) else { continue };
            let weight = var.as_tensor().detach();
            // A leaf's gradient can itself track ops (it is built from the variable's tensor).
            let grad = grad.detach();
            let update = match self.config {
                OptimizerConfig::Sgd { momentum, dampening, weight_decay } => {
                    let g = with_weight_decay(grad, &weight, weight_decay)?;
                    sgd_direction(&mut self.state, name, g, momentum, dampening)?
                }
                OptimizerConfig::Adam { beta1, beta2, eps, weight_decay } => {
                    let g = with_weight_decay(grad, &weight, weight_decay)?;
                    adam_direction(&mut self.state, name, g, (beta1, beta2, eps), self.step)?
                }
            };
            var.set(&(weight - (update * lr)?)?)?;
        }
        Ok(())
    }

    /// The name of the first parameter holding a NaN or an infinity, if any. One reduction per
    /// parameter and a single read back, so it is cheap enough to run after every step.
    pub fn non_finite_param(&self) -> Result<Option<String>> {
        if self.params.is_empty() {
            return Ok(None);
        }
        // A sum is non-finite exactly when an element is (or the sum overflows f32, which only
        // weights that are already unusable do).
        let sums = self
            .params
            .iter()
            .map(|(_, v)| v.as_tensor().detach().to_dtype(candle_core::DType::F32)?.sum_all())
            .collect::<Result<Vec<_>>>()?;
        let sums = Tensor::stack(&sums, 0)?.to_vec1::<f32>()?;
        Ok(sums.iter().position(|s| !s.is_finite()).map(|i| self.params[i].0.clone()))
    }

    /// The state tensors, by key (for checks and checkpoints).
    pub fn state(&self) -> &HashMap<String, Tensor> {
        &self.state
    }

    /// The optimizer's state as named tensors (plus the step count), for a checkpoint.
    pub fn state_tensors(&self) -> Result<HashMap<String, Tensor>> {
        let mut out = self.state.clone();
        let device = self.params.first().map(|(_, v)| v.device().clone()).unwrap_or(candle_core::Device::Cpu);
        out.insert("__step".into(), Tensor::new(&[self.step as i64], &device)?);
        Ok(out)
    }

    /// Restores state saved by [`Optimizer::state_tensors`].
    pub fn load_state(&mut self, mut tensors: HashMap<String, Tensor>) -> Result<()> {
        let step = tensors
            .remove("__step")
            .ok_or_else(|| candle_core::Error::Msg("optimizer state has no `__step` entry".into()))?;
        self.step = step.to_vec1::<i64>()?.first().copied().unwrap_or(0) as u64;
        self.state = tensors;
        Ok(())
    }
}

/// `grad + weight_decay * weight`, both detached.
fn with_weight_decay(grad: Tensor, weight: &Tensor, weight_decay: f64) -> Result<Tensor> {
    if weight_decay == 0.0 {
        return Ok(grad);
    }
    grad + (weight * weight_decay)?
}

/// PyTorch SGD: the first step stores the gradient itself; later ones `m = μ m + (1 − dampening) g`.
fn sgd_direction(
    state: &mut HashMap<String, Tensor>,
    name: &str,
    g: Tensor,
    momentum: f64,
    dampening: f64,
) -> Result<Tensor> {
    if momentum == 0.0 {
        return Ok(g);
    }
    let key = format!("{name}.momentum");
    let buf = match state.get(&key) {
        None => g,
        Some(prev) => ((prev * momentum)? + (g * (1.0 - dampening))?)?,
    };
    state.insert(key, buf.clone());
    Ok(buf)
}

/// PyTorch Adam with bias correction; `step` counts from 1.
fn adam_direction(
    state: &mut HashMap<String, Tensor>,
    name: &str,
    g: Tensor,
    (beta1, beta2, eps): (f64, f64, f64),
    step: u64,
) -> Result<Tensor> {
    let m_key = format!("{name}.exp_avg");
    let v_key = format!("{name}.exp_avg_sq");
    let m = match state.get(&m_key) {
        None => (&g * (1.0 - beta1))?,
        Some(prev) => ((prev * beta1)? + (&g * (1.0 - beta1))?)?,
    };
    let g2 = g.sqr()?;
    let v = match state.get(&v_key) {
        None => (g2 * (1.0 - beta2))?,
        Some(prev) => ((prev * beta2)? + (g2 * (1.0 - beta2))?)?,
    };
    let bias1 = 1.0 - beta1.powi(step as i32);
    let bias2 = 1.0 - beta2.powi(step as i32);
    let denom = ((&v / bias2)?.sqrt()? + eps)?;
    let direction = ((&m / bias1)? / denom)?;
    state.insert(m_key, m);
    state.insert(v_key, v);
    Ok(direction)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    fn quadratic_grads(var: &Var) -> Result<GradStore> {
        // d/dx of sum(x²)/2 is x.
        (var.as_tensor().sqr()?.sum_all()? * 0.5)?.backward()
    }

    #[test]
    fn sgd_matches_torch_rule_by_hand() -> Result<()> {
        let var = Var::new(&[1.0f64, -2.0], &Device::Cpu)?;
        let cfg = OptimizerConfig::Sgd { momentum: 0.9, dampening: 0.9, weight_decay: 0.0 };
        let mut opt = Optimizer::new(cfg, vec![("w".into(), var.clone())]);
        opt.step(&quadratic_grads(&var)?, 0.1)?; // buf = g = x0; x1 = 0.9 x0
        opt.step(&quadratic_grads(&var)?, 0.1)?; // buf = 0.9 x0 + 0.1 x1 = 0.99 x0; x2 = x1 - 0.099 x0
        let got = var.as_tensor().to_vec1::<f64>()?;
        let expect: Vec<f64> = [1.0f64, -2.0].iter().map(|x0| 0.9 * x0 - 0.099 * x0).collect();
        for (g, e) in got.iter().zip(&expect) {
            assert!((g - e).abs() < 1e-12, "{got:?} vs {expect:?}");
        }
        Ok(())
    }

    #[test]
    fn adam_first_step_moves_by_lr() -> Result<()> {
        let var = Var::new(&[3.0f64, -0.5], &Device::Cpu)?;
        let mut opt = Optimizer::new(OptimizerConfig::adam(), vec![("w".into(), var.clone())]);
        if let OptimizerConfig::Adam { .. } = opt.config {
            opt.config = OptimizerConfig::Adam { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0 };
        }
        opt.step(&quadratic_grads(&var)?, 0.01)?;
        // With bias correction the first Adam step is lr * sign(g) (up to eps).
        let got = var.as_tensor().to_vec1::<f64>()?;
        assert!((got[0] - 2.99).abs() < 1e-6 && (got[1] + 0.49).abs() < 1e-6, "{got:?}");
        Ok(())
    }

    #[test]
    fn state_round_trip_resumes_identically() -> Result<()> {
        let run = |split: bool| -> Result<Vec<f64>> {
            let var = Var::new(&[1.0f64, 2.0, -3.0], &Device::Cpu)?;
            let mut opt = Optimizer::new(OptimizerConfig::adam(), vec![("w".into(), var.clone())]);
            for i in 0..6 {
                if split && i == 3 {
                    let saved = opt.state_tensors()?;
                    opt = Optimizer::new(OptimizerConfig::adam(), vec![("w".into(), var.clone())]);
                    opt.load_state(saved)?;
                }
                opt.step(&quadratic_grads(&var)?, 0.05)?;
            }
            var.as_tensor().to_vec1::<f64>()
        };
        assert_eq!(run(false)?, run(true)?);
        Ok(())
    }

    /// A state tensor that tracks its ops keeps the previous step's state and gradient alive:
    /// the memory of a run then grows by a few copies of the model every step.
    #[test]
    fn state_holds_no_autograd_graph() -> Result<()> {
        // Every rule with a weight decay: that term is where a graph started.
        let adam = OptimizerConfig::Adam { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 1e-4 };
        for config in [OptimizerConfig::hardnet_sgd(), OptimizerConfig::tfeat_sgd(), adam] {
            let var = Var::new(&[1.0f32, -2.0, 0.5], &Device::Cpu)?;
            let mut opt = Optimizer::new(config.clone(), vec![("w".into(), var.clone())]);
            for _ in 0..3 {
                opt.step(&quadratic_grads(&var)?, 0.1)?;
            }
            assert!(!opt.state().is_empty());
            for (key, t) in opt.state() {
                assert!(!t.track_op(), "{config:?}: state `{key}` tracks an autograd graph");
            }
        }
        Ok(())
    }

    #[test]
    fn non_finite_parameter_is_named() -> Result<()> {
        let a = Var::new(&[1.0f32, 2.0], &Device::Cpu)?;
        let b = Var::new(&[3.0f32], &Device::Cpu)?;
        let opt =
            Optimizer::new(OptimizerConfig::adam(), vec![("b".into(), b.clone()), ("a".into(), a.clone())]);
        assert_eq!(opt.non_finite_param()?, None);
        b.set(&Tensor::new(&[f32::INFINITY], &Device::Cpu)?)?;
        assert_eq!(opt.non_finite_param()?, Some("b".to_string()));
        a.set(&Tensor::new(&[f32::NAN, 0.0], &Device::Cpu)?)?;
        assert_eq!(opt.non_finite_param()?, Some("a".to_string()), "sorted by name: `a` first");
        Ok(())
    }

    #[test]
    fn vars_without_gradient_are_not_decayed() -> Result<()> {
        let used = Var::new(&[1.0f32], &Device::Cpu)?;
        let unused = Var::zeros(1, DType::F32, &Device::Cpu)?;
        unused.set(&Tensor::new(&[5.0f32], &Device::Cpu)?)?;
        let mut opt = Optimizer::new(
            OptimizerConfig::hardnet_sgd(),
            vec![("a".into(), used.clone()), ("b".into(), unused.clone())],
        );
        opt.step(&quadratic_grads(&used)?, 1.0)?;
        assert_eq!(unused.as_tensor().to_vec1::<f32>()?, vec![5.0]);
        Ok(())
    }
}
