{{/*
Names. The fullname leaves room for "-<ordinal>" and "-p2p-<ordinal>": a pod name is a
worker's PHAROS_WORKER_NAME (at most 63 characters) and a DNS label.
*/}}
{{- define "pharos.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "pharos.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{ include "pharos.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* The name label is also the Prometheus job (ServiceMonitor jobLabel): job="pharos". */}}
{{- define "pharos.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "pharos.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "pharos.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "pharos.secretName" -}}
{{- if .Values.existingSecret -}}
{{- .Values.existingSecret -}}
{{- else -}}
{{- include "pharos.fullname" . -}}
{{- end -}}
{{- end -}}

{{/* Most workers that can exist at once: one p2p Service each in LoadBalancer mode. */}}
{{- define "pharos.maxWorkers" -}}
{{- if .Values.autoscaling.enabled -}}
{{- .Values.autoscaling.maxReplicas -}}
{{- else -}}
{{- .Values.replicaCount -}}
{{- end -}}
{{- end -}}

{{/*
PHAROS_ANNOUNCE of one worker. Kubernetes expands $(PHAROS_WORKER_NAME) and $(NODE_IP)
from the env entries defined before it in the container.
*/}}
{{- define "pharos.announce" -}}
{{- $tcp := .Values.config.PHAROS_P2P_TCP_PORT -}}
{{- $ws := .Values.config.PHAROS_P2P_WS_PORT -}}
{{- if eq .Values.p2p.service.type "NodePort" -}}
{{- printf "/ip4/$(NODE_IP)/tcp/%v,/ip4/$(NODE_IP)/tcp/%v/ws" .Values.p2p.service.nodePorts.tcp .Values.p2p.service.nodePorts.ws -}}
{{- else -}}
{{- $domain := required "p2p.announce.domain is required with p2p.service.type=LoadBalancer: each worker announces /dns4/<pod name>.<domain>" .Values.p2p.announce.domain -}}
{{- printf "/dns4/$(PHAROS_WORKER_NAME).%s/tcp/%v,/dns4/$(PHAROS_WORKER_NAME).%s/tcp/%v/ws" $domain $tcp $domain $ws -}}
{{- end -}}
{{- end -}}

{{/* Fails the render when fleet mode could not start: a required key has no source. */}}
{{- define "pharos.validate" -}}
{{- if not (has .Values.p2p.service.type (list "LoadBalancer" "NodePort")) -}}
{{- fail (printf "p2p.service.type must be LoadBalancer or NodePort, not %q" .Values.p2p.service.type) -}}
{{- end -}}
{{- range $key := list "PHAROS_WORKER_NAME" "PHAROS_ANNOUNCE" "PHAROS_PEER_KEY" -}}
{{- if or (hasKey $.Values.config $key) (hasKey $.Values.secretConfig $key) -}}
{{- fail (printf "%s is set per pod by the chart (one peer ID per worker); remove it from config/secretConfig" $key) -}}
{{- end -}}
{{- end -}}
{{- if not .Values.existingSecret -}}
{{- range $key := list "DATABASE_URL" "REDIS_URL" "PHAROS_FLEET_SECRET" -}}
{{- if not (or (index $.Values.secretConfig $key) (hasKey $.Values.secretKeyRefs $key)) -}}
{{- fail (printf "secretConfig.%s is required (or existingSecret, or secretKeyRefs.%s): the chart runs workers as a fleet on external Postgres and Redis" $key $key) -}}
{{- end -}}
{{- end -}}
{{- if and .Values.secretConfig.PHAROS_FLEET_SECRET (lt (len .Values.secretConfig.PHAROS_FLEET_SECRET) 32) -}}
{{- fail "secretConfig.PHAROS_FLEET_SECRET must be at least 32 characters (openssl rand -base64 32)" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
The optional Alertmanager's pods: labels of their own, so no selector of the workers'
(Services, PodDisruptionBudget, NetworkPolicy) takes them in.
*/}}
{{- define "pharos.alertmanagerSelectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}-alertmanager
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
